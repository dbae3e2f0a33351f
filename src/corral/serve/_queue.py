"""The durable event queue: webhook events waiting for, or given up on by, their plugin.

One SQLite file (``<data_dir>/events.db``, WAL) that the server and ``corral events`` share.
An event is ``pending`` until its plugin acknowledges it (``delivered``) or it fails
`max_attempts` times (``dead``, the dead-letter list). Every state change is committed before
the caller moves on: a webhook is answered 202 only once its row is committed, and an event is
marked delivered before the next one is taken. An event in flight when the process dies is
still ``pending`` and is delivered again after a restart: delivery is at least once for an
event whose acknowledgement was not recorded, exactly once for one whose was.

The table also remembers when each scheduled job last ran, so a restart neither forgets nor
repeats runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .._sqlite import SQLiteConnections

__all__ = ["EventQueue", "EventState", "QueuedEvent"]

_FILENAME = "events.db"

EventState = Literal["pending", "delivered", "dead"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        plugin TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at_ms INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        finished_at_ms INTEGER,
        UNIQUE (plugin, delivery_id)
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_state ON events (state, plugin, seq)",
    # For `prune_delivered`, which otherwise walks every delivered event kept (a week's) to
    # find the old ones, holding the write lock that webhooks wait for: 0.9 s at a million.
    "CREATE INDEX IF NOT EXISTS events_by_finish ON events (state, finished_at_ms)",
    """CREATE TABLE IF NOT EXISTS schedule_runs (
        plugin TEXT NOT NULL,
        job TEXT NOT NULL,
        last_run_ms INTEGER NOT NULL,
        PRIMARY KEY (plugin, job)
    )""",
)
_COLUMNS = (
    "seq, plugin, delivery_id, source, type, payload, received_at_ms, state, attempts, "
    "next_attempt_ms, last_error"
)

# Each plugin's oldest pending event, found by hopping from plugin to plugin in
# `events_by_state`: two index seeks per plugin. `MIN(seq) ... GROUP BY plugin` read every
# pending event instead, and the dispatcher asks after every delivery, so draining a backlog
# of n events cost n^2 (6 ms a read at 100,000 pending; bench/event_queue.py).
_HEADS = f"""WITH RECURSIVE pending (plugin) AS (
        SELECT MIN(plugin) FROM events WHERE state = 'pending'
        UNION ALL
        SELECT (SELECT MIN(plugin) FROM events WHERE state = 'pending' AND plugin > p.plugin)
        FROM pending p WHERE p.plugin IS NOT NULL
    )
    SELECT {_COLUMNS} FROM events WHERE seq IN (
        SELECT (SELECT MIN(seq) FROM events WHERE state = 'pending' AND plugin = p.plugin)
        FROM pending p
    )"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class QueuedEvent:
    """One row of the queue."""

    seq: int
    plugin: str
    delivery_id: str
    source: str
    type: str
    payload: str
    received_at_ms: int
    state: EventState
    attempts: int
    next_attempt_ms: int
    last_error: str


@dataclass
class _Intake:
    """One event waiting to be committed, and what became of it."""

    fields: tuple[str, str, str, str, str, int]
    seq: int | None = None
    error: BaseException | None = None
    done: bool = False


class EventQueue:
    """The queue in ``events.db``; safe to use from many threads and processes at once."""

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = SQLiteConnections(path, name=f"event queue {path}", busy_timeout=busy_timeout)
        with self._db.writing() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
        self._intake = threading.Condition()
        self._waiting: list[_Intake] = []
        self._committing = False

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> EventQueue:
        """The queue of the server whose data dir is `data_dir`."""
        return cls(data_dir / _FILENAME)

    # -- intake ----------------------------------------------------------------------------

    def enqueue(
        self, plugin: str, delivery_id: str, source: str, type: str, payload: str
    ) -> int | None:
        """Store an event (committed on return); its seq, or None if `delivery_id` was seen.

        Events arriving together are committed together: each commit waits for the disk
        (milliseconds), so a burst from many senders shares one wait instead of queueing for
        one each. The thread that finds no commit running writes every event waiting so far.
        """
        entry = _Intake((plugin, delivery_id, source, type, payload, now_ms()))
        with self._intake:
            self._waiting.append(entry)
            while not entry.done:
                if self._committing:
                    self._intake.wait()
                    continue
                batch, self._waiting = self._waiting, []
                self._committing = True
                self._intake.release()
                try:
                    self._commit(batch)
                finally:
                    self._intake.acquire()
                    self._committing = False
                    self._intake.notify_all()
        if entry.error is not None:
            raise entry.error
        return entry.seq

    def _commit(self, batch: list[_Intake]) -> None:
        try:
            with self._db.writing() as conn:
                for entry in batch:
                    *fields, received = entry.fields
                    cursor = conn.execute(
                        "INSERT OR IGNORE INTO events (plugin, delivery_id, source, type, "
                        "payload, received_at_ms, state, next_attempt_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                        (*fields, received, received),
                    )
                    entry.seq = cursor.lastrowid if cursor.rowcount == 1 else None
        except BaseException as exc:  # nothing of the batch was committed: all of it failed
            for entry in batch:
                entry.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for entry in batch:
                entry.done = True

    # -- delivery --------------------------------------------------------------------------

    def heads(self) -> list[QueuedEvent]:
        """Each plugin's oldest pending event: the only one that may be delivered next."""
        with self._db.reading() as conn:
            rows = conn.execute(_HEADS).fetchall()
        return [QueuedEvent(*row) for row in rows]

    def mark_delivered(self, seq: int) -> None:
        self._finish(seq, "delivered", "")

    def mark_dead(self, seq: int, error: str) -> None:
        self._finish(seq, "dead", error)

    def mark_failed(self, seq: int, error: str, next_attempt_ms: int) -> None:
        """Count a failed attempt; the event stays pending until `next_attempt_ms`."""
        with self._db.writing() as conn:
            conn.execute(
                "UPDATE events SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? "
                "WHERE seq = ? AND state = 'pending'",
                (error, next_attempt_ms, seq),
            )

    def postpone(self, seq: int, next_attempt_ms: int, reason: str) -> None:
        """Try again later without counting an attempt (the plugin was not there to try)."""
        with self._db.writing() as conn:
            conn.execute(
                "UPDATE events SET next_attempt_ms = ?, last_error = ? "
                "WHERE seq = ? AND state = 'pending'",
                (next_attempt_ms, reason, seq),
            )

    def _finish(self, seq: int, state: EventState, error: str) -> None:
        """End an event's life in the queue after one last attempt."""
        with self._db.writing() as conn:
            conn.execute(
                "UPDATE events SET state = ?, last_error = ?, finished_at_ms = ?, "
                "attempts = attempts + 1 WHERE seq = ? AND state = 'pending'",
                (state, error, now_ms(), seq),
            )

    # -- operators -------------------------------------------------------------------------

    def list(
        self, *, plugin: str | None = None, state: EventState | None = None, limit: int = 100
    ) -> list[QueuedEvent]:
        """Events, oldest first, optionally of one plugin and/or state."""
        where, args = _filter(plugin, state)
        with self._db.reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events{where} ORDER BY seq LIMIT ?", (*args, limit)
            ).fetchall()
        return [QueuedEvent(*row) for row in rows]

    def retry(self, seq: int) -> bool:
        """Put a dead event back in the queue with its attempts reset; False if not dead."""
        with self._db.writing() as conn:
            cursor = conn.execute(
                "UPDATE events SET state = 'pending', attempts = 0, next_attempt_ms = ?, "
                "finished_at_ms = NULL WHERE seq = ? AND state = 'dead'",
                (now_ms(), seq),
            )
            return cursor.rowcount == 1

    def drop(self, seq: int) -> bool:
        """Delete a pending or dead event; False if there is none (delivered ones stay, for
        deduplication)."""
        with self._db.writing() as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE seq = ? AND state != 'delivered'", (seq,)
            )
            return cursor.rowcount == 1

    def counts(self, plugin: str | None = None) -> dict[str, dict[Literal["pending", "dead"], int]]:
        """Per plugin (or for `plugin` alone), how many events are pending and dead.

        Delivered ones are not counted: there are many, and the index on state keeps this query
        to the few that are not (and on plugin, to that plugin's: ``/plugins`` asks once per
        plugin, and counting every plugin's backlog each time cost plugins x backlog).
        """
        where, args = ("", ()) if plugin is None else (" AND plugin = ?", (plugin,))
        result: dict[str, dict[Literal["pending", "dead"], int]] = {}
        with self._db.reading() as conn:
            for name, state, count in conn.execute(
                "SELECT plugin, state, COUNT(*) FROM events "
                f"WHERE state IN ('pending', 'dead'){where} GROUP BY plugin, state",
                args,
            ):
                result.setdefault(name, {"pending": 0, "dead": 0})[state] = count
        return result

    def prune_delivered(self, older_than_ms: int) -> int:
        """Forget delivered events older than that (their ids no longer deduplicate)."""
        with self._db.writing() as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE state = 'delivered' AND finished_at_ms < ?",
                (older_than_ms,),
            )
            return cursor.rowcount

    # -- schedules -------------------------------------------------------------------------

    def last_run_ms(self, plugin: str, job: str) -> int | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT last_run_ms FROM schedule_runs WHERE plugin = ? AND job = ?",
                (plugin, job),
            ).fetchone()
        return None if row is None else int(row[0])

    def record_run(self, plugin: str, job: str, at_ms: int) -> None:
        with self._db.writing() as conn:
            conn.execute(
                "INSERT INTO schedule_runs (plugin, job, last_run_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (plugin, job) DO UPDATE SET last_run_ms = excluded.last_run_ms",
                (plugin, job, at_ms),
            )

    def close(self) -> None:
        self._db.close()


def _filter(plugin: str | None, state: EventState | None) -> tuple[str, tuple[str, ...]]:
    clauses, args = [], []
    if plugin is not None:
        clauses.append("plugin = ?")
        args.append(plugin)
    if state is not None:
        clauses.append("state = ?")
        args.append(state)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)
