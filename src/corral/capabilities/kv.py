"""`kv`: plugin-private key-value state (sync cursors, base snapshots), stored in SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from .._errors import ConfigError
from .._units import parse_size
from .._validation import validate_model
from ..host_services import HostServices
from ..kvstore import KvLimits
from ._base import CallContext, Capability, HostFunction, PluginContext
from ._wit import record

__all__ = ["KvCapability", "KvOptions"]

PERMISSION = "kv"


class KvOptions(BaseModel):
    """Operator options under ``plugins.<name>.kv``; unset means the host's defaults
    (1 MiB per value, 64 MiB per plugin)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_value: str | None = None
    max_total: str | None = None

    @field_validator("max_value", "max_total")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and parse_size(value) <= 0:
            raise ValueError(f'"{value}" must be larger than zero')
        return value


@dataclass(frozen=True)
class _KvState:
    plugin: str
    services: HostServices
    limits: KvLimits


class KvCapability(Capability):
    name = "kv"
    permissions = (PERMISSION,)
    option_types: ClassVar[Mapping[str, Any]] = {"kv": KvOptions}

    def configure(self, plugin: PluginContext) -> _KvState:
        options = validate_model(
            KvOptions, plugin.options.get("kv") or {}, f"plugins.{plugin.name}.kv", ConfigError
        )
        limits = KvLimits(
            max_value_bytes=None if options.max_value is None else parse_size(options.max_value),
            max_plugin_bytes=None if options.max_total is None else parse_size(options.max_total),
        )
        return _KvState(plugin.name, plugin.services, limits)

    def host_functions(self, state: _KvState) -> list[HostFunction]:
        services, name, limits = state.services, state.plugin, state.limits

        def get(call: CallContext, key: str) -> bytes:
            return services.kv_store.get(name, key)

        def set_(call: CallContext, key: str, value: bytes) -> None:
            services.kv_store.set(name, key, value, limits)
            services.audit.record("kv.write", name, key=key, size=len(value))

        def delete(call: CallContext, key: str) -> bool:
            deleted = services.kv_store.delete(name, key)
            services.audit.record("kv.delete", name, key=key, deleted=deleted)
            return deleted

        def list_keys(call: CallContext, prefix: str, cursor: str | None, limit: int) -> object:
            keys, next_cursor = services.kv_store.list_keys(name, prefix, cursor, limit)
            return record(keys=keys, next_cursor=next_cursor)

        def compare_and_set(
            call: CallContext, key: str, expected: bytes | None, value: bytes
        ) -> bool:
            swapped = services.kv_store.compare_and_set(name, key, expected, value, limits)
            services.audit.record("kv.write", name, key=key, size=len(value), swapped=swapped)
            return swapped

        return [
            HostFunction("get", get, PERMISSION),
            HostFunction("set", set_, PERMISSION),
            HostFunction("delete", delete, PERMISSION),
            HostFunction("list-keys", list_keys, PERMISSION),
            HostFunction("compare-and-set", compare_and_set, PERMISSION),
        ]
