"""`PluginHost`: the embedding API."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ._errors import ConfigError, HostNotReady, PluginError, PluginNotFound
from ._units import parse_size
from ._validation import validate_model
from .bundle import Bundle
from .capabilities.http import SimulatedNetwork
from .config import HostConfig, load_host_config
from .host_services import HostServices
from .kvstore import SQLiteKVStore
from .manifest import commands_json
from .registry import PluginInfo, Registry
from .runtime import EngineSettings, Event, PluginRunner, Runtime
from .sync import Conflict, ProgressCallback, Resolution, SyncConnector, SyncReport
from .tasks import TaskStore

__all__ = ["PluginHost"]


class PluginHost:
    """Discovers, loads and calls sandboxed plugins.

    >>> settings = {"hello": {"grant": ["config.read"]}}
    >>> with PluginHost(plugin_dirs=["plugins"], plugins=settings) as host:
    ...     host.load()
    ...     host.call("hello", "echo", {"msg": "hi"})

    `plugins` maps plugin names to their operator settings, as under ``plugins:`` in corral.yaml.
    `task_store` lets a host application serve its own tasks to plugins; by default they live in
    SQLite under `data_dir`. `max_manifest_size` and `max_component_size` cap what reading one
    bundle may cost, as ``bundles:`` in corral.yaml does. `network` replaces the internet for
    plugins' HTTP requests, after every check (for tests: see `corral.testing`). Calls are
    thread-safe; `acall` runs one off the asyncio event loop.
    """

    def __init__(
        self,
        plugin_dirs: Sequence[str | Path] | str | Path = (),
        *,
        data_dir: str | Path = ".corral",
        plugins: Mapping[str, Mapping[str, Any]] | None = None,
        defaults: Mapping[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        cache_max_size: str = "1GB",
        max_wasm_stack: str = "1MB",
        max_manifest_size: str | None = None,
        max_component_size: str | None = None,
        task_store: TaskStore | None = None,
        config: HostConfig | None = None,
        network: SimulatedNetwork | None = None,
    ) -> None:
        if isinstance(plugin_dirs, str | Path):  # one dir, not a sequence of one-letter dirs
            plugin_dirs = [plugin_dirs]
        if config is None:
            raw = {
                "plugin_dirs": [str(p) for p in plugin_dirs],
                "data_dir": str(data_dir),
                "cache_dir": None if cache_dir is None else str(cache_dir),
                "cache_max_size": cache_max_size,
                "engine": {"max_wasm_stack": max_wasm_stack},
                "bundles": {
                    key: value
                    for key, value in (
                        ("max_manifest_size", max_manifest_size),
                        ("max_component_size", max_component_size),
                    )
                    if value is not None
                },
                "defaults": dict(defaults or {}),
                "plugins": {k: dict(v) for k, v in (plugins or {}).items()},
            }
            config = validate_model(HostConfig, raw, "PluginHost", ConfigError).resolved(Path.cwd())
        self.config = config
        self._runtime = Runtime(
            EngineSettings(max_wasm_stack=parse_size(config.engine.max_wasm_stack))
        )
        self._services = HostServices(config.data_dir, task_store, network)
        self._registry = Registry(self._runtime, config, self._services)
        self._state: Literal["new", "loaded", "closed"] = "new"
        # Stores must be dropped before the interpreter shuts down: Wasmtime's WASI output
        # threads call back into Python, and doing so during finalization aborts the process.
        self._finalizer = weakref.finalize(
            self, _shutdown, self._registry, self._services, self._runtime
        )

    @classmethod
    def from_config(cls, path: str | Path, *, task_store: TaskStore | None = None) -> PluginHost:
        """A host configured by a corral.yaml file (relative paths are relative to it)."""
        return cls(config=load_host_config(Path(path)), task_store=task_store)

    @property
    def task_store(self) -> TaskStore:
        """The task store plugins read and write."""
        return self._services.task_store

    @property
    def kv_store(self) -> SQLiteKVStore:
        """The key-value store plugins read and write (each plugin sees only its own keys)."""
        return self._services.kv_store

    def load(self) -> list[PluginInfo]:
        """Discover and load every bundle (again, if called twice); returns each one's state."""
        self._check_open()
        infos = self._registry.load_all()
        self._state = "loaded"
        return infos

    def refresh(
        self, config: HostConfig | None = None, *, on_compiled: Callable[[], None] | None = None
    ) -> list[PluginInfo]:
        """Apply what changed in the plugin dirs (and `config`, if given), plugin by plugin.

        Unchanged plugins keep running; new bundles load, removed ones unload, changed ones
        (bundle or settings) are swapped in once loaded, and calls already running finish on
        the old version. An update that fails leaves the old version serving, with the reason
        in its `PluginInfo.last_error`. `config` may not change `data_dir`, `cache_dir` or
        `engine` (they take a new host): that raises `ConfigError` and changes nothing.

        A plugin whose component must be compiled first shows as ``compiling`` meanwhile. With
        `on_compiled`, compiles run in threads of their own and `refresh` returns without
        waiting; `on_compiled()` is called as each ends, and the next `refresh` loads it.
        """
        self._check_open()
        if config is not None:
            for key in ("data_dir", "cache_dir", "engine"):
                if getattr(config, key) != getattr(self.config, key):
                    raise ConfigError(f"{key} changed; restart the host to apply it")
        infos = self._registry.refresh(config, on_compiled)
        self.config = config or self.config
        self._state = "loaded"
        return infos

    def plugins(self) -> list[PluginInfo]:
        """Every discovered bundle, loaded or not, with its state and reason."""
        return self._registry.infos()

    def unmatched_settings(self) -> list[str]:
        """Warnings, one per ``plugins:`` entry that names no plugin found by the last `load`
        or `refresh` (with a "did you mean" for a close name); also logged."""
        return self._registry.unmatched_settings()

    def plugin(self, name: str) -> PluginInfo:
        """What the host knows about plugin `name` (`PluginNotFound` if nothing)."""
        for info in self._registry.infos():
            if info.name == name:
                return info
        raise PluginNotFound(f"no plugin named {name!r}")

    def verify(self, bundle_dir: str | Path) -> Bundle:
        """Check a bundle as loading it would, without loading it: its manifest, checksum and
        component, which must compile and fit the ``corral:plugin`` world (compiling it uses,
        and fills, this host's cache). Raises `ManifestError` or `BundleError`."""
        bundle = Bundle.open(Path(bundle_dir), self.config.bundles.limits())
        self._registry.checked(bundle)
        return bundle

    def describe(self, bundle_dir: str | Path) -> dict[str, Any]:
        """A bundle's manifest, permissions, and its component's imports and exports.

        The bundle is verified first; compiling it uses (and fills) this host's cache.
        """
        bundle = Bundle.open(Path(bundle_dir), self.config.bundles.limits())
        imports, exports = self._registry.interface(bundle)
        manifest = bundle.manifest
        return {
            "name": manifest.name,
            "version": manifest.plugin.version,
            "description": manifest.plugin.description,
            "capabilities": manifest.capabilities,
            "permissions": sorted(manifest.requested_permissions),
            "allowed_hosts": manifest.security.allowed_hosts,
            "operator_hosts": manifest.security.operator_hosts,
            "limits": manifest.runtime.model_dump(),
            "checksum": manifest.security.checksum,
            "commands": commands_json(manifest.commands),
            "imports": imports,
            "exports": exports,
        }

    def call(
        self, plugin: str, command: str, input: Any = None, *, check_output: bool = False
    ) -> Any:
        """Run `command` in `plugin` with a JSON-able `input`; returns the decoded JSON result.

        Raises `PluginError` for an error value, `PluginTrap` (or `PluginTimeout`,
        `PluginMemoryExceeded`, `PluginFuelExhausted`) when the plugin traps, and
        `PluginNotFound`/`PluginUnavailable` when it is not loaded, `HostNotReady` before
        `load()` or after `close()`; `ConfigError` naming the first value of `input` that is not
        JSON-able (a set, a datetime, NaN), and `PluginError` (``internal``) for a result the
        host cannot decode. Nothing else: every failure is a `CorralError`.

        A command the manifest declares has its input checked against its `input_schema`
        first: `InvalidCommandInput` (a `PluginError` of kind ``invalid-input``) names the
        field, and the plugin is not entered. `check_output` checks the result against the
        `output_schema` too (`ProtocolError`), for authors and tests.
        """
        runner = self._runner(plugin)
        input_json = _to_json(input, "input", f"the input of {plugin} {command!r}")
        runner.commands.check_input(command, input)
        output = runner.invoke(command, input_json)
        try:
            result = json.loads(output)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg}"
        except RecursionError:
            reason = "JSON nested deeper than Python's recursion limit"
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            reason = f"JSON the host cannot decode: {exc}"
        else:
            if check_output:
                runner.commands.check_output(command, result)
            return result
        raise PluginError(plugin, "internal", f"{command!r} returned {reason}")

    async def acall(self, plugin: str, command: str, input: Any = None) -> Any:
        """`call`, run in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self.call, plugin, command, input)

    def send_event(
        self,
        plugin: str,
        type: str,
        payload: Any = None,
        *,
        source: str = "host",
        id: str | None = None,
        received_at_ms: int | None = None,
    ) -> None:
        """Deliver an event (JSON-able payload) to the plugin's `on-event` export.

        `received_at_ms` (ms since the epoch, default now) is when the event reached the host,
        which for a queued event is earlier than its delivery.
        """
        event = Event(
            source=source,
            type=type,
            id=id or uuid.uuid4().hex,
            payload=_to_json(payload, "payload", f"the payload of the {type!r} event for {plugin}"),
            received_at_ms=int(time.time() * 1000) if received_at_ms is None else received_at_ms,
        )
        self._runner(plugin).on_event(event)

    def sync(
        self,
        plugin: str,
        *,
        full: bool = False,
        dry_run: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> SyncReport:
        """Run a sync plugin (one following plugin-sdk/sync-protocol.md) until its run is done.

        Resumes a run that was stopped (Ctrl-C, a killed process, a trap); `full` re-reads
        everything rather than what changed since the last run; `dry_run` changes nothing.
        `on_progress` gets a `corral.sync.SyncProgress` after every slice of work. Raises like
        `call`, and `ProtocolError` when the plugin's answers do not follow the protocol.
        """
        return self.sync_connector(plugin).sync(full=full, dry_run=dry_run, on_progress=on_progress)

    def conflicts(self, plugin: str) -> list[Conflict]:
        """The sync plugin's open conflicts: fields changed on both sides, awaiting a person."""
        return self.sync_connector(plugin).conflicts()

    def resolve(
        self,
        plugin: str,
        conflict_id: str,
        *,
        take: Literal["local", "remote", "value"],
        value: Any = None,
    ) -> Resolution:
        """Settle a conflict on the `local` or `remote` value, or on `value` (take="value");
        the sync plugin writes it to the side that lacks it."""
        return self.sync_connector(plugin).resolve(conflict_id, take=take, value=value)

    def sync_connector(self, plugin: str) -> SyncConnector:
        """`plugin` driven as a sync connector (status, conflicts, runs with progress)."""
        timeout_s = self._runner(plugin).limits.timeout_s
        return SyncConnector(
            plugin, lambda command, input: self.call(plugin, command, input), timeout_s
        )

    def close(self) -> None:
        """Unload every plugin and close the stores this host opened."""
        self._state = "closed"
        self._finalizer()

    def _check_open(self) -> None:
        if self._state == "closed":
            raise HostNotReady("this PluginHost is closed; create a new one")

    def _runner(self, plugin: str) -> PluginRunner:
        self._check_open()
        if self._state == "new":
            raise HostNotReady(
                f"no plugins are loaded yet: call host.load() before calling {plugin!r}"
            )
        return self._registry.runner(plugin)

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_json(value: Any, name: str, what: str) -> str:
    """`value` (the argument `name`) as JSON text; `ConfigError` naming the first value inside
    it that has none."""
    try:
        return json.dumps(value, allow_nan=False)
    except RecursionError:
        reason = "is nested too deeply"
    except (TypeError, ValueError) as exc:
        try:
            reason = "is not JSON-able: " + (_not_json(value, name) or str(exc))
        except RecursionError:
            reason = "is nested too deeply"
    raise ConfigError(f"{what} {reason}")


# What to do instead, for values people pass by mistake.
_JSON_HINTS = {
    "set": "use a list",
    "frozenset": "use a list",
    "datetime": "pass .isoformat()",
    "date": "pass .isoformat()",
    "bytes": "decode it, or pass base64 text",
    "Decimal": "pass a float or a string",
}


def _not_json(value: Any, path: str) -> str | None:
    """``path[...]: what`` for the first value inside `value` that JSON cannot hold, if any."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, which JSON cannot hold"
    if isinstance(value, list | tuple):
        items: Any = enumerate(value)
    elif isinstance(value, dict):
        for key in value:
            if not (key is None or isinstance(key, str | int | float | bool)):
                return f"{path} has a key of type {type(key).__name__}; keys must be strings"
        items = value.items()
    else:
        kind = type(value).__name__
        hint = _JSON_HINTS.get(kind)
        return f"{path} is of type {kind}" + (f" ({hint})" if hint else "")
    for key, item in items:
        found = _not_json(item, f"{path}[{json.dumps(key)}]")
        if found:
            return found
    return None


def _shutdown(registry: Registry, services: HostServices, runtime: Runtime) -> None:
    registry.close()
    services.close()
    runtime.close()
