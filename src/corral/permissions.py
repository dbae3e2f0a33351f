"""The permission vocabulary, gathered from the capabilities that own each name."""

from __future__ import annotations

from collections.abc import Iterable

from .capabilities import CAPABILITIES

__all__ = ["KNOWN_PERMISSIONS", "PERMISSION_ALIASES", "expand_permissions"]

PERMISSION_ALIASES: dict[str, tuple[str, ...]] = {
    alias: targets for cap in CAPABILITIES for alias, targets in cap.permission_aliases.items()
}
KNOWN_PERMISSIONS: frozenset[str] = frozenset(
    [p for cap in CAPABILITIES for p in cap.permissions] + list(PERMISSION_ALIASES)
)


def expand_permissions(names: Iterable[str]) -> frozenset[str]:
    """Replace aliases (``task.read_write``) by the permissions they stand for."""
    expanded: set[str] = set()
    for name in names:
        expanded.update(PERMISSION_ALIASES.get(name, (name,)))
    return frozenset(expanded)
