"""Hooks for counting what plugins do, for whoever wants to know (`corral serve` feeds its
Prometheus metrics from them). With no observer registered each hook costs one list check.

Observers run on the calling thread, inside host functions: they must be quick and must not
raise (an exception is logged and dropped, never passed to the plugin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["EgressObserver", "HostCallObserver", "egress", "host_call", "observe"]

_log = logging.getLogger("corral.observe")

HostCallObserver = Callable[[str, str], None]
"""(plugin, host function as ``interface.function``)"""
EgressObserver = Callable[[str, str], None]
"""(plugin, decision: ``allow`` or ``deny``)"""

_host_calls: list[HostCallObserver] = []
_egress: list[EgressObserver] = []


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
