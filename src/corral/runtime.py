"""Running components in Wasmtime: the shared engines, limits, deadlines and instance pools.

One `Runtime` owns two Engines, alike but for fuel: metering fuel costs a CPU-bound plugin
about 15% of its time, so only plugins with a fuel budget run on the metering one. Deadlines
use epoch interruption, and the epoch counter belongs to an Engine: bumping it to stop one call
would interrupt every other plugin's call too. So a single ticker thread advances both epochs
at a fixed rate and each call sets its own per-store deadline, counted in ticks.

A `Store` is not thread-safe. Each `PluginRunner` keeps a bounded pool of instances, each in its
own store; a call takes an idle instance (or creates one, up to `max_instances`), or waits for
one until its deadline. An instance that trapped is discarded; the next call gets a fresh one.
Instances are otherwise reused between calls, so module-level state in a plugin may survive
from one call to the next but is never guaranteed to.
"""

from __future__ import annotations

import contextvars
import logging
import math
import platform
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from wasmtime import Config, Engine, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Instance, Linker, Variant

from . import _observe
from ._audit import AuditLog, audited_call
from ._commands import CommandValidators
from ._component_values import ExportFunc, add_host_func
from ._errors import (
    BundleError,
    HostApiError,
    PluginError,
    PluginTimeout,
    PluginTrap,
)
from ._guest_output import GuestOutput
from ._traps import trap_from
from .capabilities import CallContext, HostFunction, wit_interface
from .capabilities._wit import error_value, record
from .permissions import PluginPermissions

__all__ = ["EngineSettings", "Event", "PluginLimits", "PluginRunner", "Runtime"]

_log = logging.getLogger("corral.runtime")

HANDLER = wit_interface("handler")
_current_call: contextvars.ContextVar[CallContext] = contextvars.ContextVar("corral_call")
# Components built with componentize-py contain a few dozen core instances and tables; these
# caps stop a component from multiplying them while leaving room for any real toolchain.
_MAX_CORE_INSTANCES = 1000
_MAX_TABLES = 1000
_MAX_MEMORIES = 100
_MAX_TABLE_ELEMENTS = 1_000_000
_WASMTIME_VERSION = metadata.version("wasmtime")
# A store on the metering engine always needs fuel: one with no budget gets this much once.
_ENDLESS_FUEL = 1 << 62
_TICKER_LINGER_S = 1.0
# Wasmtime's output threads release a closed store's streams within microseconds, unless they
# wait for the GIL; past this, a store's close stops waiting for them.
_OUTPUT_RELEASE_S = 1.0


@dataclass(frozen=True)
class EngineSettings:
    """Engine-wide settings: every plugin shares them, and compiled artifacts depend on them."""

    max_wasm_stack: int = 1 << 20
    epoch_tick_s: float = 0.005

    def fingerprint(self, metered: bool) -> str:
        """What a compiled artifact depends on besides the component itself."""
        return (
            f"wasmtime={_WASMTIME_VERSION};epoch=1;fuel={int(metered)};"
            f"stack={self.max_wasm_stack};target={platform.machine()}"
        )


@dataclass(frozen=True)
class PluginLimits:
    """The limits in force for one plugin (the tighter of manifest and operator)."""

    memory_bytes: int
    timeout_s: float
    fuel: int | None = None
    max_instances: int = 4
    max_output_bytes: int = 64 << 10
    """Guest stdout/stderr logged per call; the rest is dropped and counted."""


@dataclass(frozen=True)
class Event:
    """An event delivered to a plugin's `on-event` export."""

    source: str
    type: str
    id: str
    payload: str
    received_at_ms: int


def _engine(settings: EngineSettings, metered: bool) -> Engine:
    config = Config()
    config.epoch_interruption = True
    config.consume_fuel = metered
    config.max_wasm_stack = settings.max_wasm_stack
    return Engine(config)


class Runtime:
    """The shared Engines, their epoch ticker, and component compilation."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self._engines = {metered: _engine(self.settings, metered) for metered in (False, True)}
        self._active = 0
        self._ticking = False
        self._last_call = 0.0
        self._closing = False
        # The epoch clock: while the ticker runs, each engine's epoch is due to reach
        # `_origin_epoch + n` at monotonic time `_origin + n * tick`, and never earlier.
        # `_epoch` counts the increments made so far, to both engines alike; only the ticker
        # makes them.
        self._epoch = 0
        self._origin = 0.0
        self._origin_epoch = 0
        self._wake = threading.Condition()
        self._ticker = threading.Thread(target=self._tick, name="corral-epoch", daemon=True)
        self._ticker.start()

    def call_started(self) -> None:
        """Count a call in flight: the ticker runs while there is one (and a while after)."""
        with self._wake:
            self._active += 1
            if not self._ticking:
                # The clock restarts here, not when the ticker thread gets to run: deadlines
                # armed before it does must already count from now.
                self._ticking = True
                self._origin = time.monotonic()
                self._origin_epoch = self._epoch
                self._wake.notify()

    def call_finished(self) -> None:
        with self._wake:
            self._active -= 1
            self._last_call = time.monotonic()

    def _tick(self) -> None:
        tick = self.settings.epoch_tick_s
        while True:
            with self._wake:
                # An idle host does not wake up 200 times a second.
                self._wake.wait_for(lambda: self._ticking or self._closing)
                if self._closing:
                    return
                origin, origin_epoch = self._origin, self._origin_epoch
            while not self._closing:
                time.sleep(tick)
                now = time.monotonic()
                # The epoch follows the wall clock: after a late wake-up (sleep jitter, another
                # thread holding the GIL) it catches up in a burst. Deadlines are absolute
                # epochs (`epoch_deadline`), so a burst ends calls on time, never early.
                due = origin_epoch + int((now - origin) / tick)
                while self._epoch < due:
                    for engine in self._engines.values():
                        engine.increment_epoch()
                    self._epoch += 1
                with self._wake:
                    # Waking this thread costs a call tens of microseconds, so it keeps ticking
                    # through short gaps between calls and sleeps only after a quiet second.
                    if self._active == 0 and now - self._last_call > _TICKER_LINGER_S:
                        self._ticking = False
                        break

    def epoch_deadline(self, deadline: float) -> int:
        """Ticks to pass to `Store.set_epoch_deadline` for the `time.monotonic()` `deadline`.

        The target is absolute: the epoch the ticker reaches at `deadline` by wall clock, so a
        stale epoch (the ticker starved of the GIL) cannot bring the trap forward. `_epoch` may
        lag an engine's epoch by the increment in progress, which only makes the deadline a
        tick later. Call it only while a call is counted (`call_started`): the clock is fixed
        then.
        """
        with self._wake:
            target = self._origin_epoch + math.ceil(
                (deadline - self._origin) / self.settings.epoch_tick_s
            )
            return max(0, target - self._epoch)

    def engine(self, metered: bool) -> Engine:
        """The engine that meters fuel, or the one that does not."""
        return self._engines[metered]

    def compile(self, wasm: bytes, metered: bool) -> Component:
        """Compile a component for one engine (seconds for a Python plugin: callers cache the
        result)."""
        try:
            return Component(self._engines[metered], wasm)
        except WasmtimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "invalid"
            raise BundleError(f"not a valid WebAssembly component: {first}") from None

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._ticker.join()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _export(store: Store, instance: Instance, name: str) -> ExportFunc:
    handler = instance.get_export_index(store, HANDLER)
    index = instance.get_export_index(store, name, handler) if handler is not None else None
    func = instance.get_func(store, index) if index is not None else None
    if func is None:  # check_contract refuses such components at load time
        raise PluginTrap("?", "missing export", detail=f"{HANDLER}#{name}")
    return ExportFunc(func)


class _Instance:
    """One instantiated component in its own store."""

    def __init__(self, store: Store, instance: Instance, outputs: list[GuestOutput]) -> None:
        self.store = store
        self.outputs = outputs
        self.invoke = _export(store, instance, "invoke")
        self.on_event = _export(store, instance, "on-event")

    def close(self) -> None:
        _close_store(self.store, self.outputs)


def _close_store(store: Store, outputs: list[GuestOutput]) -> None:
    """Free a store's linear memory and WASI context now, and let its output threads finish.

    A trap's traceback holds the frames that held the store, in a cycle with the exception, so
    without this the memory waits for the cyclic GC (gigabytes after a few memory traps), or
    for interpreter exit, where Wasmtime's WASI output threads then call into a finalizing
    Python and abort the process.
    """
    store.close()
    for output in outputs:
        if not output.wait_released(_OUTPUT_RELEASE_S):
            _log.warning("guest %s still held by Wasmtime after its store closed", output.stream)


class PluginRunner:
    """Calls into one loaded plugin: links its capabilities and pools its instances.

    `commands` holds the validators of the commands its manifest declares; callers check input
    with them before `invoke` (they have the input as a value, `invoke` only as JSON text).
    """

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        component: Component,
        limits: PluginLimits,
        interfaces: dict[str, list[HostFunction]],
        permissions: PluginPermissions,
        logger: logging.Logger,
        audit: AuditLog | None = None,
        commands: CommandValidators | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.commands = commands if commands is not None else CommandValidators(name, {})
        self.component = component
        self.limits = limits
        self._metered = limits.fuel is not None
        self._engine = runtime.engine(self._metered)
        self._logger = logger
        self._audit = audit if audit is not None else AuditLog()
        self._linker = self._link(interfaces, permissions)
        self._idle: list[_Instance] = []
        self._live = 0
        self._available = threading.Condition()
        self._closed = False

    # -- linking ---------------------------------------------------------------------------

    def _link(
        self, interfaces: dict[str, list[HostFunction]], permissions: PluginPermissions
    ) -> Linker:
        linker = Linker(self._engine)
        # WASI is linked for what language runtimes need (clocks, random, stdio); the store's
        # WasiConfig grants no files, no environment and no network (Wasmtime's WASI context
        # denies every socket address and name lookup by default). wasi:http is never linked:
        # it would give unrestricted egress; plugins use Corral's `http` instead.
        linker.add_wasip2()
        linker.allow_shadowing = True
        with linker.root() as root:
            for interface, functions in interfaces.items():
                with root.add_instance(wit_interface(interface)) as instance:
                    for function in functions:
                        host_call = self._host_call(interface, function, permissions)
                        add_host_func(instance, function.name, host_call)
        return linker

    def _host_call(
        self, interface: str, function: HostFunction, permissions: PluginPermissions
    ) -> Callable[..., Any]:
        plugin = self.name
        qualified = f"{interface}.{function.name}"
        if function.permission is not None and function.permission not in permissions.in_force:
            denied = error_value(permissions.denial(qualified, function.permission))
            permission, audit = function.permission, self._audit

            def refuse(_store: Any, *_args: Any) -> Any:
                audit.record("permission.denied", plugin, function=qualified, permission=permission)
                if (watcher := _observe.watcher()) is not None:
                    watcher.host_call(
                        _observe.HostCall(
                            qualified, 0.0, "permission-denied", str(denied.payload), permission
                        )
                    )
                return denied

            return refuse

        impl = function.impl
        logger = self._logger

        def answer(*args: Any) -> Any:
            # Host functions never raise into Wasmtime: an exception there becomes a trap, and
            # the contract says errors cross as values.
            context = _current_call.get()
            # The guest may call in after its deadline, before the next epoch check traps it:
            # no host work starts then.
            if context.remaining() <= 0:
                return Variant("timeout", f"{qualified}: the call's deadline has passed")
            try:
                return impl(context, *args)
            except HostApiError as exc:
                return error_value(exc)
            except Exception:
                logger.exception("host function %s failed", qualified)
                return Variant("internal", f"the host failed in {qualified}; see the host log")

        def call(_store: Any, *args: Any) -> Any:
            _observe.host_call(plugin, qualified)
            watcher = _observe.watcher()
            if watcher is None:
                return answer(*args)
            started = time.perf_counter()
            result = answer(*args)
            seconds = time.perf_counter() - started
            # `answer` turns every failure into a `plugin-error` Variant; no ok value of the
            # WIT's functions is a variant.
            if isinstance(result, Variant):
                payload = result.payload
                message = payload if isinstance(payload, str) else getattr(payload, "message", "")
                record = _observe.HostCall(qualified, seconds, result.tag, str(message))
            else:
                record = _observe.HostCall(qualified, seconds)
            watcher.host_call(record)
            return result

        return call

    # -- instances -------------------------------------------------------------------------

    def _new_instance(self, deadline: float) -> _Instance:
        store = Store(self._engine)
        wasi = WasiConfig()
        outputs = [
            GuestOutput(self._logger, "stdout", self.limits.max_output_bytes),
            GuestOutput(self._logger, "stderr", self.limits.max_output_bytes),
        ]
        wasi.stdout_custom = outputs[0].sink()
        wasi.stderr_custom = outputs[1].sink()
        store.set_wasi(wasi)
        store.set_limits(
            memory_size=self.limits.memory_bytes,
            table_elements=_MAX_TABLE_ELEMENTS,
            instances=_MAX_CORE_INSTANCES,
            tables=_MAX_TABLES,
            memories=_MAX_MEMORIES,
        )
        if self._metered:
            # A metered store without a budget gets a practically endless supply once, rather
            # than a refill on every call.
            store.set_fuel(_ENDLESS_FUEL)
        self._arm(store, deadline)
        start = time.monotonic()
        try:
            instance = self._linker.instantiate(store, self.component)
        except WasmtimeError as exc:
            elapsed = time.monotonic() - start
            _close_store(store, outputs)
            raise trap_from(self.name, exc, self.limits, elapsed, outputs[1].tail) from None
        finally:
            for output in outputs:
                output.end_call()
        return _Instance(store, instance, outputs)

    def _arm(self, store: Store, deadline: float) -> None:
        """Give the store what is left of the call's time, and a fresh fuel budget."""
        store.set_epoch_deadline(self.runtime.epoch_deadline(deadline))
        if self.limits.fuel is not None:
            store.set_fuel(self.limits.fuel)

    def _acquire(self, deadline: float) -> _Instance:
        """An idle instance, or a new one while under `max_instances`, or wait for one."""
        with self._available:
            while not self._idle and self._live >= self.limits.max_instances:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0 or not self._available.wait(remaining):
                    if self._closed:
                        raise PluginTrap(self.name, "closed", detail="the host is shutting down")
                    raise PluginTimeout(
                        self.name,
                        "timeout",
                        detail=f"all {self.limits.max_instances} instances stayed busy",
                    )
            if self._idle:
                return self._idle.pop()
            self._live += 1
        # Instantiation runs outside the lock: it takes milliseconds.
        return self._spawn(deadline)

    def _spawn(self, deadline: float) -> _Instance:
        """A new instance for a slot already counted in `_live` (given up if this fails)."""
        try:
            return self._new_instance(deadline)
        except BaseException:
            self._discard(None)
            raise

    def _release(self, instance: _Instance) -> None:
        """Return a healthy instance to the pool (or close it if the runner is closed)."""
        with self._available:
            if not self._closed:
                self._idle.append(instance)
                self._available.notify()
                return
        self._discard(instance)

    def _discard(self, instance: _Instance | None) -> None:
        """Give up an instance's slot and free its store (None: a slot that got no instance)."""
        if instance is not None:
            instance.close()
        with self._available:
            self._live -= 1
            if self._closed:  # `wait_closed` waits for the last slot too
                self._available.notify_all()
            else:
                self._available.notify()

    def prepare(self) -> None:
        """Instantiate once now, so a component that cannot link fails at load, not at its
        first call; the instance then waits in the pool for that call."""
        with self._call_scope(time.monotonic() + self.limits.timeout_s) as deadline:
            with self._available:
                self._live += 1
            self._release(self._spawn(deadline))

    @contextmanager
    def _call_scope(self, deadline: float) -> Iterator[float]:
        """What host functions and the epoch ticker need while guest code runs."""
        context = CallContext(plugin=self.name, deadline=deadline)
        token = _current_call.set(context)
        self.runtime.call_started()
        try:
            yield deadline
        finally:
            context.end()
            self.runtime.call_finished()
            _current_call.reset(token)

    # -- calls -----------------------------------------------------------------------------

    def _run(self, export: str, *args: Any) -> Any:
        start = time.monotonic()
        watcher = _observe.watcher()
        with self._call_scope(start + self.limits.timeout_s) as deadline:
            instance = self._acquire(deadline)
            healthy = False
            try:
                store = instance.store
                self._arm(store, deadline)
                # What a call burns can be read on a metered store, budget or not.
                fuel = store.get_fuel() if watcher is not None and self._metered else None
                for output in instance.outputs:
                    output.watcher = watcher
                func = instance.invoke if export == "invoke" else instance.on_event
                try:
                    result = func(store, *args)
                    func.post_return(store)
                except WasmtimeError as exc:
                    elapsed = time.monotonic() - start
                    stderr_tail = instance.outputs[1].tail
                    raise trap_from(self.name, exc, self.limits, elapsed, stderr_tail) from None
                finally:
                    for output in instance.outputs:
                        output.end_call()
                        output.watcher = None
                    if watcher is not None:
                        watcher.call_ended(None if fuel is None else fuel - store.get_fuel())
                healthy = True
                return result
            finally:
                # An instance that failed in any way is dropped: its state is unknown.
                if healthy:
                    self._release(instance)
                else:
                    self._discard(instance)

    def invoke(self, command: str, input_json: str) -> str:
        """Call the plugin's `invoke` export; returns its JSON text."""
        with audited_call(self._audit, self.name, command):
            result = self._run("invoke", command, input_json)
            if isinstance(result, Variant):
                raise _plugin_error(self.name, result)
            if not isinstance(result, str):
                raise PluginTrap(self.name, "bad result", detail=f"invoke returned {type(result)}")
            return result

    def on_event(self, event: Event) -> None:
        """Deliver an event to the plugin's `on-event` export."""
        value = record(
            source=event.source,
            type=event.type,
            id=event.id,
            payload=event.payload,
            received_at=event.received_at_ms,
        )
        with audited_call(self._audit, self.name, f"on-event:{event.type}"):
            result = self._run("on-event", value)
            if isinstance(result, Variant):
                raise _plugin_error(self.name, result)

    def close(self) -> None:
        """Take no new calls and free the idle instances; calls running now finish, and their
        instances are freed when they end (see `wait_closed`)."""
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._available.notify_all()
        for instance in idle:
            self._discard(instance)

    def wait_closed(self, timeout: float) -> bool:
        """After `close`, wait up to `timeout` seconds for running calls; True once none are."""
        with self._available:
            return self._available.wait_for(lambda: self._live <= 0, timeout)


def _plugin_error(plugin: str, value: Variant) -> PluginError:
    payload = value.payload
    if value.tag == "rate-limited":
        return PluginError(
            plugin,
            value.tag,
            str(getattr(payload, "message", "")),
            int(getattr(payload, "retry-after-ms", 0)),
        )
    return PluginError(plugin, value.tag, str(payload))
