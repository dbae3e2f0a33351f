"""Circuit breakers: a plugin that keeps trapping is cut off for a while instead of being
called (and trapping, and burning its whole timeout) again and again.

Each plugin has one breaker. `failures` traps or timeouts in a row open it: every call then
fails at once with `CircuitOpen`. After `open_for` it half-opens and lets one trial call
through; if that one succeeds the breaker closes, if it traps the breaker opens again for twice
as long (at most `max_open_for`). An error *value* returned by the plugin is a success here:
the plugin ran and answered. Calls that never reached the plugin (not loaded) count for neither.
A new version of the plugin (`version` tells them apart) starts with a closed breaker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from .._errors import CircuitOpen, PluginError, PluginTrap
from .._units import parse_duration
from ..config import BreakerOptions

__all__ = ["BreakerState", "Breakers"]

State = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class BreakerState:
    """One plugin's breaker, as `/plugins` and the metrics show it."""

    state: State
    failures: int
    """Traps or timeouts in a row."""
    retry_in_s: float
    """Until the next trial call (0 unless open)."""
    opened: int
    """How many times it opened since it last closed (the back-off doubles each time)."""


class _Breaker:
    def __init__(self, version: object) -> None:
        self.version = version
        self.state: State = "closed"
        self.failures = 0
        self.opened = 0
        self.open_until = 0.0
        self.trial_running = False


class Breakers:
    """The breakers of every plugin; `guard` wraps a call to a plugin in its breaker."""

    def __init__(
        self,
        options: BreakerOptions,
        *,
        version: Callable[[str], object] = lambda _plugin: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = options.failures
        self._version = version
        self._open_for = parse_duration(options.open_for)
        self._max_open_for = parse_duration(options.max_open_for)
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}

    @contextmanager
    def guard(self, plugin: str) -> Iterator[None]:
        """Around one call into `plugin`: refuses it (`CircuitOpen`) while the breaker is open,
        and records how it went."""
        trial = self._admit(plugin)
        outcome: bool | None = None
        try:
            yield
            outcome = True
        except PluginTrap:
            outcome = False
            raise
        except PluginError:
            outcome = True
            raise
        finally:
            self._record(plugin, outcome, trial)

    def _admit(self, plugin: str) -> bool:
        """Whether this call is the half-open trial; raises `CircuitOpen` if it may not run."""
        with self._lock:
            # A plugin gets a breaker at its first trap, so names that never ran (a client may
            # send any) do not pile up here or in the metrics.
            breaker = self._breakers.get(plugin)
            if breaker is None or breaker.state == "closed":
                return False
            if self._version(plugin) != breaker.version:  # a new version gets a fresh start
                del self._breakers[plugin]
                return False
            now = self._clock()
            if breaker.state == "open" and now >= breaker.open_until:
                breaker.state = "half-open"
            if breaker.state == "half-open" and not breaker.trial_running:
                breaker.trial_running = True
                return True
            retry_in = max(0.0, breaker.open_until - now)
        raise CircuitOpen(
            plugin,
            f"plugin {plugin!r} is cut off: it trapped or timed out {breaker.failures} times "
            f"in a row (circuit breaker open; next trial call in {retry_in:.1f}s)",
            retry_in,
        )

    def _record(self, plugin: str, success: bool | None, trial: bool) -> None:
        with self._lock:
            breaker = self._breakers.get(plugin)
            if breaker is not None and trial:
                breaker.trial_running = False
            if success is None:  # the call never reached the plugin
                return
            if success:
                if breaker is not None:
                    breaker.state, breaker.failures, breaker.opened = "closed", 0, 0
                return
            if breaker is None:
                breaker = self._breakers[plugin] = _Breaker(self._version(plugin))
            breaker.failures += 1
            failed_trial = trial and breaker.state == "half-open"
            if failed_trial or (breaker.state == "closed" and breaker.failures >= self._threshold):
                back_off = min(self._open_for * 2.0**breaker.opened, self._max_open_for)
                breaker.state = "open"
                breaker.opened += 1
                breaker.open_until = self._clock() + back_off

    def states(self) -> dict[str, BreakerState]:
        """The breaker of every plugin that has trapped since the server started."""
        now = self._clock()
        with self._lock:
            return {
                name: BreakerState(
                    b.state,
                    b.failures,
                    max(0.0, b.open_until - now) if b.state == "open" else 0.0,
                    b.opened,
                )
                for name, b in self._breakers.items()
            }
