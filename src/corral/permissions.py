"""The permission vocabulary, gathered from the capabilities that own each name."""

from __future__ import annotations

from collections.abc import Iterable

from .capabilities import CAPABILITIES

__all__ = [
    "KNOWN_PERMISSIONS",
    "PERMISSION_ALIASES",
    "check_permission_names",
    "expand_permissions",
]

PERMISSION_ALIASES: dict[str, tuple[str, ...]] = {
    alias: targets for cap in CAPABILITIES for alias, targets in cap.permission_aliases.items()
}
KNOWN_PERMISSIONS: frozenset[str] = frozenset(
    [p for cap in CAPABILITIES for p in cap.permissions] + list(PERMISSION_ALIASES)
)


def check_permission_names(names: list[str]) -> list[str]:
    """`names`, or `ValueError` naming the first that is not a permission."""
    for name in names:
        if name not in KNOWN_PERMISSIONS:
            known = ", ".join(sorted(KNOWN_PERMISSIONS))
            raise ValueError(f'"{name}" is not a permission (known: {known})')
    return names


def expand_permissions(names: Iterable[str]) -> frozenset[str]:
    """Replace aliases (``task.read_write``) by the permissions they stand for."""
    expanded: set[str] = set()
    for name in names:
        expanded.update(PERMISSION_ALIASES.get(name, (name,)))
    return frozenset(expanded)
