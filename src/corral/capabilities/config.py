"""`config`: the operator's per-plugin config, validated against the manifest's config_schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigError, NotFound
from .._json_schema import first_violation, offline_validator
from ._base import CallContext, Capability, HostFunction, PluginContext

__all__ = ["ConfigCapability", "validate_plugin_config"]

PERMISSION = "config.read"


def validate_plugin_config(
    plugin: str, schema: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    """Check the operator's config against the plugin's schema; errors name the path."""
    if not schema:
        return
    problem = first_violation(offline_validator(schema), dict(config), f"plugins.{plugin}.config")
    if problem is not None:
        raise ConfigError(problem)


class ConfigCapability(Capability):
    name = "config"
    permissions = (PERMISSION,)

    def configure(self, plugin: PluginContext) -> dict[str, str]:
        validate_plugin_config(plugin.name, plugin.manifest.config_schema, plugin.plugin_config)
        # Serialised once: the config is immutable while the plugin is loaded.
        return {key: json.dumps(value) for key, value in plugin.plugin_config.items()}

    def host_functions(self, state: dict[str, str]) -> list[HostFunction]:
        everything = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in state.items()) + "}"

        def get(call: CallContext, key: str) -> str:
            try:
                return state[key]
            except KeyError:
                raise NotFound(f"config key {key!r} is not set") from None

        def get_all(call: CallContext) -> str:
            return everything

        return [
            HostFunction("get", get, PERMISSION),
            HostFunction("get-all", get_all, PERMISSION),
        ]
