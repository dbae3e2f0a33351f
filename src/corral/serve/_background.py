"""What runs behind the server's webhooks and schedules, wired into a `ServeApp`.

`Background` owns the event queue (``<data_dir>/events.db``), the delivery worker, the
scheduler and the circuit breakers, and plugs them into the app: the webhook route (public:
webhooks authenticate themselves), the breaker as a guard on every call, one service that
starts and stops the workers, each plugin's queue, jobs and breaker in ``/plugins``, and their
gauges and a count of webhooks in ``/metrics``. Webhook and schedule settings follow
corral.yaml reloads; the ``serve.events`` and ``serve.breaker`` thresholds are read once, at
start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .._errors import ConfigError, PluginNotFound
from ..config import HostConfig
from ._breaker import Breakers
from ._delivery import EventDelivery, RetryPolicy
from ._queue import EventQueue
from ._scheduler import JobRunner, Scheduler, run_entry
from ._turns import PluginTurns
from ._webhooks import WebhookIntake

if TYPE_CHECKING:
    from ._app import ServeApp

__all__ = ["Background"]

_log = logging.getLogger("corral.serve")
_BREAKER_LEVELS = {"closed": 0, "half-open": 1, "open": 2}


class Background:
    """The queue, delivery, scheduler and breakers of one server; a `Service` of its app.

    `run_job` runs one scheduled entry (`run_entry` by default: the sync driver for ``sync``
    entries, ``host.call`` for the rest).
    """

    def __init__(self, app: ServeApp, *, run_job: JobRunner = run_entry) -> None:
        config = app.host.config
        self.queue = EventQueue.in_data_dir(config.data_dir)
        self.breakers = Breakers(config.serve.breaker, version=lambda name: _loaded_at(app, name))
        turns = PluginTurns()
        policy = RetryPolicy.from_options(config.serve.events)
        self.delivery = EventDelivery(app.caller, self.queue, turns, policy)
        received = Counter(
            "corral_webhooks_received",
            "Webhooks by plugin and outcome (queued, duplicate, or why refused).",
            ["plugin", "outcome"],
            registry=app.metrics.registry,
        )
        self.intake = WebhookIntake(
            self.queue,
            self.delivery.wake,
            lambda plugin, outcome: received.labels(plugin, outcome).inc(),
        )
        self.scheduler = Scheduler(app.caller, self.queue, turns, run=run_job)
        self.intake.configure(config)  # a webhook secret that cannot be read stops the start
        self.scheduler.configure(config)

        app.routes.extend(self.intake.routes())
        app.public_prefixes.append("/webhooks/")
        app.caller.guards.append(self.breakers.guard)
        app.services.append(self)
        app.plugin_details.append(self.details)
        app.config_listeners.append(self.reconfigure)
        app.metrics.registry.register(_Gauges(self))

    def reconfigure(self, config: HostConfig) -> None:
        """Take a reloaded corral.yaml's webhooks and schedules (a bad secret keeps the old)."""
        try:
            self.intake.configure(config)
        except ConfigError as exc:
            _log.error("webhook settings not reloaded: %s", exc)
        self.scheduler.configure(config)

    def start(self) -> None:
        self.delivery.start()
        self.scheduler.start()

    def stop(self, timeout: float) -> None:
        """Stop the workers (running calls get up to `timeout` each); queued events stay."""
        self.scheduler.stop(timeout)
        self.delivery.stop(timeout)
        self.queue.close()

    def details(self, plugin: str) -> dict[str, Any]:
        """A plugin's queue, running jobs and breaker, for its entry in ``/plugins``."""
        counts = self.queue.counts(plugin).get(plugin, {})
        breaker = self.breakers.states().get(plugin)
        return {
            "events": {"pending": counts.get("pending", 0), "dead": counts.get("dead", 0)},
            "jobs_running": self.scheduler.running(plugin),
            "breaker": {
                "state": breaker.state if breaker else "closed",
                "failures": breaker.failures if breaker else 0,
                "retry_in_s": round(breaker.retry_in_s, 3) if breaker else 0.0,
            },
        }


def _loaded_at(app: ServeApp, plugin: str) -> float | None:
    """When the version of `plugin` in force was loaded: what tells versions apart."""
    try:
        return app.host.plugin(plugin).loaded_at
    except PluginNotFound:
        return None


class _Gauges(Collector):
    """Queue depth, dead letters and breaker states, read when scraped."""

    def __init__(self, background: Background) -> None:
        self._background = background

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "corral_events_pending", "Webhook events waiting for delivery.", labels=["plugin"]
        )
        dead = GaugeMetricFamily(
            "corral_events_dead", "Webhook events given up on (dead letters).", labels=["plugin"]
        )
        for plugin, counts in self._background.queue.counts().items():
            pending.add_metric([plugin], counts["pending"])
            dead.add_metric([plugin], counts["dead"])
        breaker = GaugeMetricFamily(
            "corral_breaker_state",
            "Circuit breaker of each plugin: 0 closed, 1 half-open, 2 open.",
            labels=["plugin"],
        )
        for plugin, state in self._background.breakers.states().items():
            breaker.add_metric([plugin], _BREAKER_LEVELS[state.state])
        yield from (pending, dead, breaker)
