"""Where the operator's settings came from, so that messages name a setting as it was written.

An operator who wrote corral.yaml is told ``plugins.x.grant: ["kv"] in /srv/corral.yaml``; an
application that passed ``PluginHost(plugins=...)`` is told ``PluginHost(plugins={"x":
{"grant": ["kv"]}})``. Telling the latter to edit a corral.yaml it does not have sends it
looking for a file that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SettingsOrigin"]

# Sections of corral.yaml that `PluginHost` takes as keywords of its own, by another name.
_HOST_KEYWORDS = {
    "engine.max_wasm_stack": "max_wasm_stack",
    "bundles.max_manifest_size": "max_manifest_size",
    "bundles.max_component_size": "max_component_size",
}
_HOST_SECTIONS = frozenset(
    {"plugin_dirs", "data_dir", "cache_dir", "cache_max_size", "defaults", "plugins"}
)


@dataclass(frozen=True)
class SettingsOrigin:
    """Settings read from `config_file`, or (None) given as `PluginHost` arguments."""

    config_file: Path | None = None

    def where(self, path: str) -> str:
        """Where the setting at the dotted `path` was written."""
        if self.config_file is not None:
            return f"{path} in {self.config_file}"
        return self.setting(path)

    def setting(self, path: str, value: object = ...) -> str:
        """How to set the dotted `path` (``plugins.x.grant``) to `value`, in the user's terms.

        `value` is an example of what to write (`...` when there is nothing to suggest).
        """
        if self.config_file is not None:
            shown = "..." if value is ... else json.dumps(value)
            return f"{path}: {shown} in {self.config_file}"
        for prefix, keyword in _HOST_KEYWORDS.items():
            if path == prefix:
                return f"PluginHost({keyword}={_python(value)})"
        first, *rest = path.split(".")
        literal = _python(value)
        for key in reversed(rest):
            literal = f"{{{json.dumps(key)}: {literal}}}"
        if first in _HOST_SECTIONS:
            return f"PluginHost({first}={literal})"
        return f"PluginHost(config=HostConfig({first}={literal}))"


def _python(value: object) -> str:
    """`value` as a Python literal, strings in double quotes as in the YAML form."""
    if value is ...:
        return "..."
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_python(item) for item in value) + "]"
    return repr(value)
