"""Every call the server makes into a plugin goes through `Caller`: one place that counts it,
times it, and lets guards (the circuit breaker) refuse or observe it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

from starlette.concurrency import run_in_threadpool

from .._errors import PluginNotFound, PluginTrap, PluginUnavailable
from ..host import PluginHost
from ._errors import error_kind
from ._metrics import Metrics

__all__ = ["CallGuard", "Caller"]

CallGuard = Callable[[str], AbstractContextManager[object]]
"""Entered around each call to a plugin (by name): raise to refuse the call; the exception that
leaves the ``with`` (or none) is the call's outcome."""


class Caller:
    """Runs plugin calls off the event loop, through the guards, with metrics."""

    def __init__(self, host: PluginHost, metrics: Metrics) -> None:
        self.host = host
        self.metrics = metrics
        self.guards: list[CallGuard] = []

    async def call(self, plugin: str, command: str, input: Any = None) -> Any:
        """`PluginHost.call` in a worker thread; raises what it raises."""
        return await run_in_threadpool(
            self.run, plugin, "invoke", self.host.call, plugin, command, input
        )

    async def send_event(self, plugin: str, type: str, payload: Any = None, **kwargs: Any) -> None:
        """`PluginHost.send_event` in a worker thread; raises what it raises."""
        await run_in_threadpool(
            self.run, plugin, "on-event", self.host.send_event, plugin, type, payload, **kwargs
        )

    def run(
        self, plugin: str, entry: str, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """``function(*args, **kwargs)``, a call into `plugin`'s `entry` (``invoke`` or
        ``on-event``), through the guards and counted; for worker threads (it blocks)."""
        start = time.perf_counter()
        outcome = "ok"
        try:
            with ExitStack() as stack:
                for guard in self.guards:
                    stack.enter_context(guard(plugin))
                return function(*args, **kwargs)
        except PluginNotFound:
            # Not counted: any name a client sends would become a label.
            outcome = "not-found"
            raise
        except BaseException as exc:
            outcome = _outcome(exc)
            if outcome != "unavailable":
                self.metrics.errors.labels(plugin, error_kind(exc)).inc()
            if isinstance(exc, PluginTrap):
                self.metrics.traps.labels(plugin, exc.trap).inc()
            raise
        finally:
            if outcome not in ("unavailable", "not-found"):
                self.metrics.duration.labels(plugin, entry).observe(time.perf_counter() - start)
            if outcome != "not-found":
                self.metrics.calls.labels(plugin, entry, outcome).inc()


def _outcome(error: BaseException) -> str:
    if isinstance(error, PluginTrap):
        return "trap"
    if isinstance(error, PluginUnavailable):
        return "unavailable"
    return "error"
