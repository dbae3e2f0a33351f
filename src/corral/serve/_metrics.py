"""Prometheus metrics of one server, in its own registry (never the process-wide default, so
two servers in one process, as in tests, count apart).

Calls are counted where they enter (`Caller`); host-function calls and HTTP egress decisions
come from the core's observer hooks (`corral._observe`). Other parts of the server create their
metrics with ``registry=metrics.registry``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .. import _observe
from ..sync import SyncReport

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Plugin calls run from tens of microseconds to the execution_timeout (30 s by default).
_DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class Metrics:
    """The server's metrics; `attach` starts counting host calls and egress, `detach` stops."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "corral_plugin_calls",
            "Plugin calls by plugin, entry point and outcome (ok, error, trap, unavailable).",
            ["plugin", "entry", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "corral_plugin_errors",
            "Failed plugin calls by plugin and kind (a plugin-error kind, or a trap's kind).",
            ["plugin", "kind"],
            registry=self.registry,
        )
        self.traps = Counter(
            "corral_plugin_traps",
            "Plugin calls that trapped, by plugin and trap (timeout, memory, fuel, ...).",
            ["plugin", "trap"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "corral_plugin_call_duration_seconds",
            "Wall time of plugin calls, by plugin and entry point.",
            ["plugin", "entry"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.host_calls = Counter(
            "corral_host_function_calls",
            "Host functions called by plugins, by plugin and function.",
            ["plugin", "function"],
            registry=self.registry,
        )
        self.egress = Counter(
            "corral_http_egress_requests",
            "Outbound HTTP requests of plugins, by plugin and decision (allow, deny).",
            ["plugin", "decision"],
            registry=self.registry,
        )
        self.sync_runs = Counter(
            "corral_sync_runs",
            "Finished sync runs by plugin and result (clean, errors, conflicts).",
            ["plugin", "result"],
            registry=self.registry,
        )
        self.sync_items = Counter(
            "corral_sync_items",
            "What finished sync runs did to items, by plugin, direction (pull, push) and outcome "
            "(created, updated, unchanged, conflicts, errors, deleted).",
            ["plugin", "direction", "outcome"],
            registry=self.registry,
        )
        self._forget: Callable[[], None] | None = None

    def count_sync(self, plugin: str, report: SyncReport) -> None:
        """Count a finished sync run's result and what it did to items."""
        result = "errors" if report.errors else "conflicts" if report.open_conflicts else "clean"
        self.sync_runs.labels(plugin, result).inc()
        for direction, counts in report.counts.items():
            for outcome, value in vars(counts).items():
                if value:
                    self.sync_items.labels(plugin, direction, outcome).inc(value)

    def attach(self) -> None:
        """Count host-function calls and egress decisions of every host in this process."""
        if self._forget is None:
            self._forget = _observe.observe(
                host_calls=lambda plugin, fn: self.host_calls.labels(plugin, fn).inc(),
                egress=lambda plugin, decision: self.egress.labels(plugin, decision).inc(),
            )

    def detach(self) -> None:
        if self._forget is not None:
            self._forget()
            self._forget = None

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format."""
        return generate_latest(self.registry)
