"""`config`: the operator's per-plugin config, validated against the manifest's config_schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from .._errors import ConfigError, NotFound
from .._json_schema import offline_validator
from ._base import CallContext, Capability, HostFunction, PluginContext

__all__ = ["ConfigCapability", "validate_plugin_config"]

PERMISSION = "config.read"


def validate_plugin_config(
    plugin: str, schema: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    """Check the operator's config against the plugin's schema; errors name the path."""
    if not schema:
        return
    validator = offline_validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        path = f"plugins.{plugin}.config" + (f".{where}" if where else "")
        raise ConfigError(f"{path}: {error.message}")


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
