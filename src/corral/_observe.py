"""Hooks for counting what plugins do, for whoever wants to know (`corral serve` feeds its
Prometheus metrics from them, `corral run` its limits report). With no observer registered each
hook costs one list check.

Two kinds of observer:

- process-wide counters (`observe`): told the plugin's name and what happened, from every call
  of every host in the process;
- a call watcher (`watch_call`): told the details of the calls made in one context (the thread,
  or asyncio task, that registered it), and of no other, so concurrent calls never mix into it.

Observers run on the calling thread, inside host functions (a watcher's `output` on Wasmtime's
output threads): they must be quick and must not raise. A counter's exception is logged and
dropped, never passed to the plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CallWatcher",
    "EgressObserver",
    "HostCall",
    "HostCallObserver",
    "HttpRequest",
    "egress",
    "host_call",
    "observe",
    "watch_call",
    "watcher",
]

_log = logging.getLogger("corral.observe")

HostCallObserver = Callable[[str, str], None]
"""(plugin, host function as ``interface.function``)"""
EgressObserver = Callable[[str, str], None]
"""(plugin, decision: ``allow`` or ``deny``)"""

_host_calls: list[HostCallObserver] = []
_egress: list[EgressObserver] = []


@dataclass(frozen=True)
class HostCall:
    """One host function call, as a watcher sees it."""

    function: str
    """``interface.function``"""
    seconds: float
    error: str | None = None
    """The error kind the host answered with (``permission-denied``...), None for success."""
    message: str = ""
    permission: str | None = None
    """The permission the call was refused for (`error` is then ``permission-denied``)."""


@dataclass(frozen=True)
class HttpRequest:
    """One outbound HTTP request (or redirect hop the host followed), as a watcher sees it."""

    method: str
    url: str
    """Without user info or fragment; a query is replaced by ``?<redacted>``."""
    decision: str
    """``allow``: it went out; ``deny``: the host refused it before connecting."""
    status: int | None
    bytes_out: int
    bytes_in: int
    seconds: float
    reason: str | None = None
    """Why it was denied or failed."""


class CallWatcher(Protocol):
    """Watches the plugin calls made in one context (`watch_call`)."""

    def host_call(self, call: HostCall) -> None:
        """A host function returned (or refused) to the plugin."""

    def http_request(self, request: HttpRequest) -> None:
        """The http capability sent, or refused, one request."""

    def log_line(self, level: str, text: str) -> None:
        """The plugin logged a line (before the host's level filter and rate limit)."""

    def output(self, stream: str, line: str) -> None:
        """The guest wrote a line to ``stdout`` or ``stderr`` (within the per-call limit)."""

    def call_ended(self, fuel_consumed: int | None) -> None:
        """The call's guest code is done (returned or trapped); its store is still open.
        `fuel_consumed` is None where the plugin's fuel is not metered."""


_watchers: list[CallWatcher] = []
_WATCHER: ContextVar[CallWatcher | None] = ContextVar("corral_call_watcher", default=None)


def observe(
    *, host_calls: HostCallObserver | None = None, egress: EgressObserver | None = None
) -> Callable[[], None]:
    """Register observers; returns the function that unregisters them."""
    added: list[tuple[list[Callable[[str, str], None]], Callable[[str, str], None]]] = []
    for observers, observer in ((_host_calls, host_calls), (_egress, egress)):
        if observer is not None:
            observers.append(observer)
            added.append((observers, observer))

    def forget() -> None:
        for observers, observer in added:
            if observer in observers:
                observers.remove(observer)

    return forget


@contextmanager
def watch_call(call_watcher: CallWatcher) -> Iterator[None]:
    """Tell `call_watcher` about the plugin calls made in this context until the block ends."""
    token = _WATCHER.set(call_watcher)
    _watchers.append(call_watcher)
    try:
        yield
    finally:
        _watchers.remove(call_watcher)
        _WATCHER.reset(token)


def watcher() -> CallWatcher | None:
    """The watcher of the calls made in this context, if any."""
    return _WATCHER.get() if _watchers else None


def _notify(observers: list[Callable[[str, str], None]], plugin: str, what: str) -> None:
    for observer in observers:
        try:
            observer(plugin, what)
        except Exception:
            _log.exception("observer %r failed", observer)


def host_call(plugin: str, function: str) -> None:
    """A plugin called a host function."""
    if _host_calls:
        _notify(_host_calls, plugin, function)


def egress(plugin: str, decision: str) -> None:
    """The http capability allowed or denied one of a plugin's requests."""
    if _egress:
        _notify(_egress, plugin, decision)
