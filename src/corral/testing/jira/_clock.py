"""The emulator's notion of "now"."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock"]


class Clock:
    """Wall-clock time plus an offset that tests and the admin API can move.

    Every timestamp the emulator writes (`created`, `updated`, changelog, webhooks) and every
    relative JQL date (`-5m`) is read from here, so advancing the clock makes "an hour later"
    happen without sleeping. Time never runs backwards: `advance` rejects negative steps.
    """

    def __init__(
        self, *, start: datetime | None = None, wall: Callable[[], datetime] | None = None
    ):
        self._wall = wall or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._offset = timedelta() if start is None else start.astimezone(UTC) - self._wall()

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC, truncated to milliseconds like Jira's."""
        moment = self._wall() + self._offset
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def advance(self, step: timedelta | float) -> datetime:
        """Move the clock forward by `step` (a timedelta or seconds); returns the new now."""
        delta = step if isinstance(step, timedelta) else timedelta(seconds=step)
        if delta < timedelta():
            raise ValueError(f"the clock only moves forward; got a step of {delta}")
        with self._lock:
            self._offset += delta
        return self.now()
