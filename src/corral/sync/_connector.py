"""`SyncConnector`: the host's side of the sync protocol for one plugin.

The driver calls `sync` until the plugin says `done`. Each call is a slice of work the plugin
keeps well inside its deadline, saving its cursor as it goes, so a run of any size never
depends on one call's timeout, and a run stopped anywhere (Ctrl-C, a killed process, a trapped
slice) continues where it stopped on the next `sync`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Literal, TypeVar

from ._model import (
    Conflict,
    ItemError,
    Resolution,
    SyncProgress,
    SyncReport,
    SyncStatus,
    parse_answer,
)

__all__ = ["ProgressCallback", "SyncConnector", "slice_budget_ms"]

PluginCall = Callable[[str, Any], Any]
"""``(command, input) -> answer``: one call into the plugin, JSON-able both ways."""
ProgressCallback = Callable[[SyncProgress], None]

MAX_SLICE_MS = 5000
"""Slices stay short even for plugins with long timeouts: the progress shown stays live, and a
killed process loses at most one slice of work."""
MIN_SLICE_MS = 100


def slice_budget_ms(timeout_s: float) -> int:
    """The `budget_ms` for a plugin whose calls may run `timeout_s`: half of it (the other half
    is the margin for the request in flight when the budget runs out), at most `MAX_SLICE_MS`."""
    return max(MIN_SLICE_MS, min(MAX_SLICE_MS, int(timeout_s * 500)))


T = TypeVar("T")


@dataclass(frozen=True)
class _ConflictList:
    conflicts: list[Conflict] = field(default_factory=list)


class SyncConnector:
    """A plugin that follows the sync protocol, driven through `call`.

    `timeout_s` is the plugin's execution timeout, from which each slice's budget is derived.
    """

    def __init__(self, plugin: str, call: PluginCall, timeout_s: float) -> None:
        self.plugin = plugin
        self._call = call
        self.budget_ms = slice_budget_ms(timeout_s)

    def sync(
        self,
        *,
        full: bool = False,
        dry_run: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> SyncReport:
        """Run a sync to the end (or resume the one in progress) and return its report.

        `on_progress` sees every slice's `SyncProgress`. Ctrl-C in the main thread is held
        until the slice running ends, then raised as `KeyboardInterrupt` (a second Ctrl-C
        raises at once); the next `sync` resumes the run. A slice that traps raises its
        `PluginTrap`, an error value its `PluginError`; the run resumes the same way.
        """
        request = {
            "mode": "full" if full else "incremental",
            "dry_run": dry_run,
            "budget_ms": self.budget_ms,
        }
        calls = 0
        errors: list[ItemError] = []
        with _interrupts_held() as interrupted:
            while True:
                progress = self._ask(SyncProgress, "sync", request)
                calls += 1
                errors.extend(progress.errors)
                if on_progress is not None:
                    on_progress(progress)
                if progress.done:
                    break
                if interrupted():
                    raise KeyboardInterrupt
        if progress.report is None:
            report = SyncReport(
                progress.run_id,
                progress.mode,
                progress.dry_run,
                counts=progress.counts,
                errors=errors,
            )
        else:
            report = self._parse(SyncReport, progress.report, "sync (its report)")
        return replace(report, calls=calls, open_conflicts=self.status().open_conflicts)

    def status(self) -> SyncStatus:
        """The run in progress (if any), the latest reports and the open conflicts' count."""
        return self._ask(SyncStatus, "status", {})

    def conflicts(self) -> list[Conflict]:
        """Every open conflict."""
        return self._ask(_ConflictList, "conflicts", {}).conflicts

    def conflict(self, conflict_id: str) -> Conflict | None:
        """The open conflict `conflict_id`, or None."""
        return next((c for c in self.conflicts() if c.id == conflict_id), None)

    def resolve(
        self,
        conflict_id: str,
        *,
        take: Literal["local", "remote", "value"],
        value: Any = None,
    ) -> Resolution:
        """Settle a conflict on the local value, the remote one, or `value` (with
        ``take="value"``), and write it to the side that lacks it."""
        if take not in ("local", "remote", "value"):
            raise ValueError(f'take must be "local", "remote" or "value", not {take!r}')
        request: dict[str, Any] = {"id": conflict_id, "take": take}
        if take == "value":
            request["value"] = value
        return self._ask(Resolution, "resolve", request)

    def _ask(self, kind: type[T], command: str, request: dict[str, Any]) -> T:
        return self._parse(kind, self._call(command, request), command)

    def _parse(self, kind: type[T], answer: Any, command: str) -> T:
        return parse_answer(kind, answer, self.plugin, command)


@contextmanager
def _interrupts_held() -> Iterator[Callable[[], bool]]:
    """Hold SIGINT while a slice runs, so Ctrl-C stops the run between calls.

    A KeyboardInterrupt raised inside a call would surface in whichever host function the
    plugin happened to be in, abandoning that slice mid-write. Only the main thread receives
    signals, and an application that installed its own handler keeps it.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield lambda: False
        return
    pressed = False

    def hold(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        if pressed:
            raise KeyboardInterrupt
        pressed = True

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield lambda: pressed
    finally:
        signal.signal(signal.SIGINT, previous)
