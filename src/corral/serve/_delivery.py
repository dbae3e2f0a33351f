"""Delivering queued events to plugins' ``on-event``, in order, retrying with back-off.

One dispatcher thread looks at each plugin's oldest pending event (`EventQueue.heads`) and hands
it to a worker when it is due and nothing else of that plugin is being delivered: events of one
plugin go one at a time, in the order they arrived; plugins do not wait for each other. A
failure (the plugin trapped or returned an error) is retried after `retry_backoff`, doubling up
to `max_backoff`, with jitter so that a sender's burst does not retry in lockstep; after
`max_attempts` the event is dead and the next one goes. A plugin that is not loaded, or whose
circuit breaker is open, was not tried: its event waits without losing an attempt. Neither
does an event whose plugin is running a scheduled job (unless its manifest allows both): it is
looked at again every 200 ms, holding no worker meanwhile.

The dispatcher also looks at the queue every `poll_s`, so events that ``corral events retry``
put back (from another process) are picked up while the server runs. Delivered events are
forgotten after a week: until then a sender's retry of one is answered as a duplicate.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
from dataclasses import dataclass

from .._errors import CircuitOpen, CorralError, PluginNotFound, PluginUnavailable
from .._units import parse_duration
from ..config import EventOptions
from ._calls import Caller
from ._queue import EventQueue, QueuedEvent, now_ms
from ._turns import PluginTurns
from ._workers import BackgroundLoop

__all__ = ["EventDelivery", "RetryPolicy"]

_log = logging.getLogger("corral.serve.events")
_NOT_LOADED_RETRY_S = 2.0
_TURN_RETRY_MS = 200
# Delivered events are kept this long, so a sender's retry of one is still recognised.
KEEP_DELIVERED_MS = 7 * 24 * 3600 * 1000
_PRUNE_EVERY_MS = 3600 * 1000


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed event again, and when to give up on it."""

    max_attempts: int
    first_s: float
    max_s: float

    @classmethod
    def from_options(cls, options: EventOptions) -> RetryPolicy:
        return cls(
            options.max_attempts,
            parse_duration(options.retry_backoff),
            parse_duration(options.max_backoff),
        )

    def delay_s(self, attempts: int) -> float:
        """The wait after the `attempts`-th failure: half fixed, half random."""
        ceiling = min(self.first_s * 2.0 ** (attempts - 1), self.max_s)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class EventDelivery(BackgroundLoop):
    """The worker that takes queued events to their plugins, through `caller` (its guards,
    such as the circuit breaker, and its metrics)."""

    def __init__(
        self,
        caller: Caller,
        queue: EventQueue,
        turns: PluginTurns,
        policy: RetryPolicy,
        *,
        workers: int = 4,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__("corral-events", workers)
        self._caller = caller
        self._queue = queue
        self._turns = turns
        self.policy = policy
        self._poll_s = poll_s
        self._busy: set[str] = set()
        self._held_until: dict[str, int] = {}
        """Plugins whose scheduled job was running at their last try (ms to look again)."""
        self._finished = 0
        """Deliveries finished so far: heads read before one finished may be stale."""
        self._woken = False

    def wake(self, _plugin: str = "") -> None:
        """Look at the queue now (an event was queued or a delivery finished)."""
        with self._wake:
            self._woken = True
            self._wake.notify()

    def _loop(self) -> None:
        pruned_at = 0
        while True:
            wait_s = self._poll_s
            now = now_ms()
            with self._wake:
                finished = self._finished
            try:
                if now - pruned_at > _PRUNE_EVERY_MS:
                    self._queue.prune_delivered(now - KEEP_DELIVERED_MS)
                    pruned_at = now
                heads = self._queue.heads()
            except CorralError as exc:
                _log.error("cannot read the event queue: %s", exc)
                heads = []
            with self._wake:
                if self._stopping:
                    return
                if self._finished != finished:
                    # A delivery ended while the heads were read: its event may show as still
                    # pending (and due) there. Read again rather than deliver it twice.
                    continue
                for event in heads:
                    if event.plugin in self._busy:
                        continue
                    held_until = self._held_until.get(event.plugin, 0)
                    if held_until > now:
                        wait_s = min(wait_s, (held_until - now) / 1000)
                    elif event.next_attempt_ms <= now:
                        self._busy.add(event.plugin)
                        self._pool.submit(functools.partial(self._deliver, event))
                    else:
                        wait_s = min(wait_s, (event.next_attempt_ms - now) / 1000)
                self._wake.wait_for(lambda: self._woken or self._stopping, wait_s)
                self._woken = False

    def _turn(self, plugin: str) -> threading.Lock | None:
        """The plugin's turn, shared with its scheduled jobs; None if its manifest allows
        events beside them."""
        try:
            concurrent = self._caller.host.plugin(plugin).concurrent_events
        except PluginNotFound:
            concurrent = False
        return None if concurrent else self._turns.of(plugin)

    def _deliver(self, event: QueuedEvent) -> None:
        turn = self._turn(event.plugin)
        try:
            if turn is not None and not turn.acquire(blocking=False):
                # A job of the plugin runs (a sync may take minutes): look again shortly,
                # rather than hold one of the workers other plugins' events need.
                with self._wake:
                    self._held_until[event.plugin] = now_ms() + _TURN_RETRY_MS
                return
            try:
                self._attempt(event)
            finally:
                if turn is not None:
                    turn.release()
        finally:
            with self._wake:
                self._busy.discard(event.plugin)
                self._finished += 1
            self.wake()

    def _attempt(self, event: QueuedEvent) -> None:
        """One delivery of `event`, and its outcome recorded in the queue."""
        try:
            self._caller.run(
                event.plugin,
                "on-event",
                self._caller.host.send_event,
                event.plugin,
                event.type,
                json.loads(event.payload),
                source=event.source,
                id=event.delivery_id,
                received_at_ms=event.received_at_ms,
            )
        except CircuitOpen as exc:
            self._postpone(event, exc.retry_after_s, str(exc))
        except (PluginNotFound, PluginUnavailable) as exc:
            self._postpone(event, _NOT_LOADED_RETRY_S, str(exc))
        except Exception as exc:  # the plugin failed it, in whatever way: retry or give up
            self._failed(event, exc)
        else:
            try:
                self._queue.mark_delivered(event.seq)
            except CorralError as exc:  # it stays pending: delivered again, at least once
                _log.error("cannot mark event %d delivered: %s", event.seq, exc)

    def _postpone(self, event: QueuedEvent, delay_s: float, reason: str) -> None:
        try:
            self._queue.postpone(event.seq, now_ms() + int(delay_s * 1000), reason)
        except CorralError as exc:
            _log.error("cannot postpone event %d: %s", event.seq, exc)

    def _failed(self, event: QueuedEvent, error: Exception) -> None:
        reason = str(error) if isinstance(error, CorralError) else repr(error)
        attempts = event.attempts + 1
        try:
            if attempts >= self.policy.max_attempts:
                self._queue.mark_dead(event.seq, reason)
                _log.warning(
                    "event %d for %s is dead after %d attempts: %s",
                    event.seq,
                    event.plugin,
                    attempts,
                    reason,
                )
            else:
                delay = self.policy.delay_s(attempts)
                self._queue.mark_failed(event.seq, reason, now_ms() + int(delay * 1000))
                _log.info(
                    "event %d for %s failed (attempt %d, retry in %.1fs): %s",
                    event.seq,
                    event.plugin,
                    attempts,
                    delay,
                    reason,
                )
        except CorralError as exc:
            _log.error("cannot record the failure of event %d: %s", event.seq, exc)
