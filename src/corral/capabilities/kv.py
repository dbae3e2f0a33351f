"""`kv`: plugin-private key-value state (sync cursors, base snapshots), stored in SQLite."""

from __future__ import annotations

from ._base import CallContext, Capability, HostFunction, PluginContext
from ._wit import record

__all__ = ["KvCapability"]

PERMISSION = "kv"


class KvCapability(Capability):
    name = "kv"
    permissions = (PERMISSION,)

    def host_functions(self, state: PluginContext) -> list[HostFunction]:
        services = state.services
        name = state.name

        def get(call: CallContext, key: str) -> bytes:
            return services.kv_store.get(name, key)

        def set_(call: CallContext, key: str, value: bytes) -> None:
            services.kv_store.set(name, key, value)

        def delete(call: CallContext, key: str) -> bool:
            return services.kv_store.delete(name, key)

        def list_keys(call: CallContext, prefix: str, cursor: str | None, limit: int) -> object:
            keys, next_cursor = services.kv_store.list_keys(name, prefix, cursor, limit)
            return record(keys=keys, next_cursor=next_cursor)

        def compare_and_set(
            call: CallContext, key: str, expected: bytes | None, value: bytes
        ) -> bool:
            return services.kv_store.compare_and_set(name, key, expected, value)

        return [
            HostFunction("get", get, PERMISSION),
            HostFunction("set", set_, PERMISSION),
            HostFunction("delete", delete, PERMISSION),
            HostFunction("list-keys", list_keys, PERMISSION),
            HostFunction("compare-and-set", compare_and_set, PERMISSION),
        ]
