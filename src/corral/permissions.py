"""The permission vocabulary, gathered from the capabilities that own each name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ._errors import PermissionDenied
from ._settings_origin import SettingsOrigin
from .capabilities import CAPABILITIES

__all__ = [
    "KNOWN_PERMISSIONS",
    "PERMISSION_ALIASES",
    "PluginPermissions",
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


@dataclass(frozen=True)
class PluginPermissions:
    """A plugin's permissions from both sides: a permission is in force only where the
    manifest requests it and the operator grants it, and a refusal says which side is missing.
    """

    plugin: str
    requested: frozenset[str]
    """By the manifest (``permissions:``), aliases expanded."""
    granted: frozenset[str]
    """By the operator (``plugins.<name>.grant``), aliases expanded."""
    origin: SettingsOrigin = field(default_factory=SettingsOrigin)

    @property
    def in_force(self) -> frozenset[str]:
        return self.requested & self.granted

    def check_requested_are_granted(self) -> None:
        """`PermissionDenied` naming what the manifest requests and the operator did not grant
        (a plugin is not loaded with less than it asked for)."""
        missing = sorted(self.requested - self.granted)
        if missing:
            names = ", ".join(f'"{p}"' for p in missing)
            plural = "s" if len(missing) > 1 else ""
            raise PermissionDenied(
                f"plugin {self.plugin!r} requests permission{plural} {names}, which the operator "
                f"has not granted; grant {'them' if plural else 'it'} with "
                + self._grant_setting(missing)
            )

    def _grant_setting(self, missing: list[str]) -> str:
        """The operator's grant setting with `missing` added to what it grants already."""
        return self.origin.setting(
            f"plugins.{self.plugin}.grant", [*sorted(self.granted), *missing]
        )

    def denial(self, function: str, permission: str) -> PermissionDenied:
        """The refusal of a host call to `function`, which needs `permission` (not in force)."""
        fixes = []
        if permission not in self.requested:
            fixes.append(
                f'the manifest does not request it: add "{permission}" to permissions: in the '
                "plugin's manifest.yaml and rebuild it"
            )
        if permission not in self.granted:
            fixes.append(
                "the operator has not granted it: grant it with "
                + self._grant_setting([permission])
            )
        return PermissionDenied(
            f'{function} needs permission "{permission}", which is not in force for plugin '
            f'"{self.plugin}": ' + "; and ".join(fixes)
        )
