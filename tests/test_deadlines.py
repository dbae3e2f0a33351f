"""Deadlines are exact in both directions: never early by wall clock, and host functions stop
at the deadline instead of running past it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from corral import PluginHost

HostFactory = Callable[..., PluginHost]

# sum() over a range runs in C without returning to the bytecode loop, so it keeps the GIL
# for its whole run (sleeping or a Python loop would hand it over every 5 ms).
_GIL_HOG_ITEMS = 60_000_000


def _hold_the_gil(started: threading.Event) -> None:
    started.set()
    sum(range(_GIL_HOG_ITEMS))


def _largest_gap_until(done: threading.Event, gaps: list[float]) -> None:
    """Record the longest stretch in which this thread could not run, until `done`."""
    last, gap = time.monotonic(), 0.0
    while not done.is_set():
        time.sleep(0.002)
        now = time.monotonic()
        gap, last = max(gap, now - last), now
    gaps.append(gap)


def test_a_starved_epoch_ticker_never_ends_a_call_early(make_host: HostFactory) -> None:
    """An application thread holds the GIL just before each call: the ticker falls behind and
    catches up in a burst, which must not eat into the next call's 2 s budget."""
    host = make_host("misbehave")  # execution_timeout: 2s
    host.call("misbehave", "count", {"n": 1})  # the ticker is running
    for _ in range(3):
        started, done = threading.Event(), threading.Event()
        gaps: list[float] = []
        probe = threading.Thread(target=_largest_gap_until, args=(done, gaps))
        hog = threading.Thread(target=_hold_the_gil, args=(started,))
        probe.start()
        hog.start()
        started.wait()
        try:
            # 1.7 s of guest work in a 2 s budget; the call begins once the hog lets go.
            assert host.call("misbehave", "spin", {"seconds": 1.7}) > 0
        finally:
            hog.join()
            done.set()
            probe.join()
        assert gaps[0] > 0.3, "the hog did not starve other threads of the GIL"
