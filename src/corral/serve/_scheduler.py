"""Scheduled commands: ``plugins.<name>.schedule`` entries run by the server.

A job is due `every` after its last run started, or at its next `cron` time after that. Its
last run is kept in the event queue's database, so after a restart a job whose runs were
missed while the server was down runs once, not once per missed slot; a job that never ran
runs at once (`every`) or at its next cron time. A job never overlaps itself: the next run is
not started before the last one has finished (a run that outlasts its interval is followed
straight away by one more, never by a backlog). The start time is recorded when a run
finishes, so a run cut short by a crash runs again after the restart.

A job runs through the server's `Caller` (its circuit breaker, its metrics) and takes the
plugin's turn (event deliveries wait for it). What a run does is a `JobRunner`, by default
`run_entry`: a ``sync`` entry runs the sync protocol's driver (plugin-sdk/sync-protocol.md) to
the end of its run, slice by resumable slice, so a sync of any size never depends on one call's
deadline and a run cut short resumes at the next one; any other command is one ``host.call``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._cron import CronExpression
from .._errors import CorralError, PluginNotFound, PluginUnavailable
from .._units import parse_duration
from ..config import HostConfig, ScheduleEntry
from ..host import PluginHost
from ..sync import SyncReport
from ._calls import Caller
from ._queue import EventQueue, now_ms
from ._turns import PluginTurns
from ._workers import BackgroundLoop

__all__ = ["Job", "JobRunner", "Scheduler", "run_entry"]

_log = logging.getLogger("corral.serve.schedule")
_NOT_LOADED_RETRY_MS = 1000

JobRunner = Callable[[PluginHost, str, ScheduleEntry], Any]
"""Runs one scheduled entry of a plugin: ``(host, plugin, entry) -> result``."""


def run_entry(host: PluginHost, plugin: str, entry: ScheduleEntry) -> Any:
    """The default `JobRunner`: the sync driver for ``sync``, else one ``host.call``."""
    if entry.command == "sync":
        options = entry.input if isinstance(entry.input, dict) else {}
        return host.sync(
            plugin, full=options.get("mode") == "full", dry_run=bool(options.get("dry_run"))
        )
    return host.call(plugin, entry.command, entry.input)


@dataclass(frozen=True)
class Job:
    """One schedule entry of one plugin."""

    plugin: str
    entry: ScheduleEntry

    @property
    def key(self) -> tuple[str, str]:
        return self.plugin, self.entry.job_name

    def next_due_ms(self, last_run_ms: int | None, now: int) -> int:
        """When the job is due, given when its last run started (None: it never ran)."""
        if self.entry.every is not None:
            if last_run_ms is None:
                return now
            return last_run_ms + int(parse_duration(self.entry.every) * 1000)
        assert self.entry.cron is not None
        after = datetime.fromtimestamp((last_run_ms or now) / 1000, UTC)
        fire = CronExpression.parse(self.entry.cron).next_after(after)
        assert fire is not None  # validated when the config was loaded
        return int(fire.timestamp() * 1000)


class Scheduler(BackgroundLoop):
    """Runs every plugin's scheduled jobs on a thread of its own."""

    def __init__(
        self,
        caller: Caller,
        queue: EventQueue,
        turns: PluginTurns,
        *,
        run: JobRunner = run_entry,
        workers: int = 2,
    ) -> None:
        super().__init__("corral-scheduler", workers)
        self._caller = caller
        self._queue = queue
        self._turns = turns
        self._run = run
        self._jobs: list[Job] = []
        self._due: dict[tuple[str, str], int] = {}
        self._running: set[tuple[str, str]] = set()

    def configure(self, config: HostConfig) -> None:
        """Take the schedules of `config` (jobs already running finish)."""
        jobs = [
            Job(name, entry)
            for name, settings in config.plugins.items()
            if settings.enabled
            for entry in settings.schedule
        ]
        now = now_ms()
        due = {job.key: job.next_due_ms(self._queue.last_run_ms(*job.key), now) for job in jobs}
        with self._wake:
            self._jobs, self._due = jobs, due
            self._wake.notify()

    def running(self, plugin: str) -> list[str]:
        """The names of `plugin`'s jobs running now."""
        with self._wake:
            return sorted(name for owner, name in self._running if owner == plugin)

    def _loop(self) -> None:
        with self._wake:
            while not self._stopping:
                now = now_ms()
                wait_ms = 60_000
                for job in self._jobs:
                    if job.key in self._running:
                        continue
                    due = self._due[job.key]
                    if due <= now:
                        self._running.add(job.key)
                        self._pool.submit(functools.partial(self._execute, job))
                    else:
                        wait_ms = min(wait_ms, due - now)
                self._wake.wait(wait_ms / 1000)

    def _execute(self, job: Job) -> None:
        started = now_ms()
        plugin, name = job.key
        try:
            with self._turns.of(plugin):
                result = self._caller.run(
                    plugin, "invoke", self._run, self._caller.host, plugin, job.entry
                )
            if isinstance(result, SyncReport):
                self._caller.metrics.count_sync(plugin, result)
        except (PluginNotFound, PluginUnavailable) as exc:  # not run: try again soon
            # Quietly: at start, and while a plugin compiles, this is expected.
            _log.debug("job %r of %s did not run: %s", name, plugin, exc)
            self._finished(job, None, started + _NOT_LOADED_RETRY_MS)
            return
        except Exception as exc:
            reason = str(exc) if isinstance(exc, CorralError) else repr(exc)
            _log.warning("job %r of %s failed: %s", name, plugin, reason)
        else:
            _log.info("job %r of %s ran in %.1fs", name, plugin, (now_ms() - started) / 1000)
        self._finished(job, started, None)

    def _finished(self, job: Job, started: int | None, retry_at: int | None) -> None:
        if started is not None:
            try:
                self._queue.record_run(*job.key, started)
            except CorralError as exc:
                _log.error("cannot record the run of job %r: %s", job.key[1], exc)
            retry_at = job.next_due_ms(started, now_ms())
        with self._wake:
            self._running.discard(job.key)
            if job.key in self._due and retry_at is not None:
                self._due[job.key] = retry_at
            self._wake.notify()
