"""`SQLiteTaskStore`: the default task store, one SQLite file.

The statements are portable SQL that PostgreSQL runs as well; SQLite's own settings are
confined to the PRAGMAs at connect (WAL, busy timeout, foreign keys) and the DDL's column types.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from corral._errors import HostTimeout, InvalidInput, NotFound
from corral._sqlite import SQLiteConnections

from .model import (
    Change,
    ChangeOp,
    Link,
    Page,
    Task,
    TaskFilter,
    TaskUpsert,
    check_version,
    format_timestamp,
)
from .store import TaskStore, WriteBounds, clamp_limit

__all__ = ["SQLiteTaskStore"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        assignee TEXT,
        labels TEXT NOT NULL,
        due_date TEXT,
        custom_fields TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        version INTEGER NOT NULL
    )""",
    # The one secondary index: queries walk it in page order and check each task's filter
    # conditions on the way (by primary key, for labels and links). Indexes per filter column
    # would speed up rare, selective queries and slow down every write, which sync plugins
    # make in bulk.
    "CREATE INDEX IF NOT EXISTS tasks_by_update ON tasks (updated_at, id)",
    # `tasks.labels` (JSON) is what is returned; this table is what label filters look in.
    """CREATE TABLE IF NOT EXISTS task_labels (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        PRIMARY KEY (task_id, label)
    )""",
    """CREATE TABLE IF NOT EXISTS task_links (
        plugin TEXT NOT NULL,
        system TEXT NOT NULL,
        external_key TEXT NOT NULL,
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        snapshot TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (plugin, system, external_key)
    )""",
    "CREATE INDEX IF NOT EXISTS task_links_by_task ON task_links (task_id, plugin, system)",
    # A change holds the task as the change left it, in the same columns as `tasks` (only id
    # and version for a delete): the rows written to `tasks` are reused, not encoded again.
    """CREATE TABLE IF NOT EXISTS task_changes (
        seq INTEGER PRIMARY KEY,
        op TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL,
        id TEXT NOT NULL,
        title TEXT,
        description TEXT,
        status TEXT,
        priority TEXT,
        assignee TEXT,
        labels TEXT,
        due_date TEXT,
        custom_fields TEXT,
        created_at TEXT,
        updated_at TEXT,
        version INTEGER NOT NULL
    )""",
    # One row: the last seq handed out. See `_append_changes`.
    "CREATE TABLE IF NOT EXISTS task_change_seq (last_seq INTEGER NOT NULL)",
    """INSERT INTO task_change_seq (last_seq)
        SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM task_change_seq)""",
    # For the per-plugin task quota: who created each task, and how many of the tasks each
    # actor created still exist. A batch reads its actor's count in one row; counting the
    # actor's create changes instead grew with every task it wrote (27 ms a batch at 50,000).
    """CREATE TABLE IF NOT EXISTS task_creators (
        task_id TEXT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
        actor TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS task_creator_counts (
        actor TEXT PRIMARY KEY,
        live INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # The index that counting create changes used.
    "DROP INDEX IF EXISTS task_changes_by_actor",
)
# A store made before `task_creators` existed: its creators, from the create changes.
_BACKFILL_CREATORS = (
    """INSERT OR REPLACE INTO task_creators (task_id, actor)
        SELECT c.id, c.actor FROM task_changes c JOIN tasks t ON t.id = c.id
        WHERE c.op = 'create' ORDER BY c.seq""",
    """INSERT INTO task_creator_counts (actor, live)
        SELECT actor, count(*) FROM task_creators GROUP BY actor""",
)

_TASK_COLUMNS = (
    "id, title, description, status, priority, assignee, labels, due_date, custom_fields, "
    "created_at, updated_at, version"
)
_SELECT_TASKS = f"SELECT {_TASK_COLUMNS} FROM tasks"
_INSERT_TASK = f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({', '.join('?' * 12)})"
_SELECT_CHANGES = f"SELECT seq, op, actor, at, {_TASK_COLUMNS} FROM task_changes"
_INSERT_CHANGE = (
    f"INSERT INTO task_changes (seq, op, actor, at, {_TASK_COLUMNS}) VALUES ({', '.join('?' * 16)})"
)
_UPDATE_TASK = """UPDATE tasks SET title = ?, description = ?, status = ?, priority = ?,
    assignee = ?, labels = ?, due_date = ?, custom_fields = ?, created_at = ?, updated_at = ?,
    version = ? WHERE id = ?"""
_LINK_COLUMNS = "plugin, system, external_key, task_id, snapshot, updated_at"
_SELECT_LINKS = f"SELECT {_LINK_COLUMNS} FROM task_links"
_UPSERT_LINK = (
    f"INSERT INTO task_links ({_LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (plugin, system, external_key) DO UPDATE SET"
    " task_id = excluded.task_id, snapshot = excluded.snapshot,"
    " updated_at = excluded.updated_at"
)

_COMMIT_RESERVE_S = 0.05
# Parameters per `IN (...)` list: well under every database's limit on bound parameters.
_CHUNK = 500


@contextmanager
def _stopped_at(conn: sqlite3.Connection, bounds: WriteBounds) -> Iterator[None]:
    """Interrupt the statements of a write transaction at `bounds.deadline`, less a reserve
    for the commit itself (an fsync): a batch committed after the deadline would stay though
    the call timed out. Raising here rolls the batch back."""
    if bounds.deadline is None:
        yield
        return
    stop = bounds.deadline - _COMMIT_RESERVE_S
    # SQLite calls this every N virtual-machine steps; a true value aborts the statement.
    conn.set_progress_handler(lambda: time.monotonic() >= stop, 10_000)
    try:
        yield
        bounds.check_time(reserve=_COMMIT_RESERVE_S)
    except sqlite3.OperationalError:
        if time.monotonic() < stop:
            raise
        raise HostTimeout("the call's deadline passed before the task batch was stored") from None
    finally:
        conn.set_progress_handler(None, 0)


def _count_created(conn: sqlite3.Connection, actor: str, created: list[Task]) -> int:
    """Record that `actor` created `created`; returns how many existing tasks it created."""
    conn.executemany(
        "INSERT INTO task_creators (task_id, actor) VALUES (?, ?)",
        [(task.id, actor) for task in created],
    )
    conn.execute(
        """INSERT INTO task_creator_counts (actor, live) VALUES (?, ?)
        ON CONFLICT (actor) DO UPDATE SET live = live + excluded.live""",
        (actor, len(created)),
    )
    # Read back rather than RETURNING, which the SQLite of older systems lacks (before 3.35).
    (live,) = conn.execute(
        "SELECT live FROM task_creator_counts WHERE actor = ?", (actor,)
    ).fetchone()
    return int(live)


def _uncount_created(conn: sqlite3.Connection, task_id: str) -> None:
    """Take a task about to be deleted off its creator's count."""
    row = conn.execute("SELECT actor FROM task_creators WHERE task_id = ?", (task_id,)).fetchone()
    if row is not None:
        conn.execute("UPDATE task_creator_counts SET live = live - 1 WHERE actor = ?", row)


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


_Row = tuple[Any, ...]


def _task_row(task: Task) -> _Row:
    """`task` as values for `_TASK_COLUMNS`."""
    return (
        task.id,
        task.title,
        task.description,
        task.status,
        task.priority,
        task.assignee,
        _json_text(task.labels),
        task.due_date,
        _json_text(task.custom_fields),
        task.created_at,
        task.updated_at,
        task.version,
    )


def _json_text(value: list[str] | dict[str, Any]) -> str:
    # Most tasks have no labels or custom fields: "[]" and "{}" need no encoder.
    return json.dumps(value) if value else "[]" if isinstance(value, list) else "{}"


def _from_json_text(text: str) -> Any:
    return [] if text == "[]" else {} if text == "{}" else json.loads(text)


def _tombstone_row(task_id: str, version: int) -> _Row:
    """The `_TASK_COLUMNS` values a delete's change holds."""
    return (task_id, *[None] * 10, version)


def _task_from_row(row: _Row) -> Task:
    task_id, title, description, status, priority, assignee, labels, due, custom, *stamps = row
    created_at, updated_at, version = stamps
    return Task(
        id=task_id,
        title=title,
        description=description,
        status=status,
        priority=priority,
        assignee=assignee,
        labels=_from_json_text(labels),
        due_date=due,
        custom_fields=_from_json_text(custom),
        created_at=created_at,
        updated_at=updated_at,
        version=version,
    )


def _link_row(link: Link) -> tuple[str, ...]:
    """`link` as values for `_LINK_COLUMNS`."""
    return (
        link.plugin,
        link.system,
        link.external_key,
        link.task_id,
        link.snapshot,
        link.updated_at,
    )


def _link_from_row(row: _Row) -> Link:
    plugin, system, external_key, task_id, snapshot, updated_at = row
    return Link(
        plugin=plugin,
        system=system,
        external_key=external_key,
        task_id=task_id,
        snapshot=snapshot,
        updated_at=updated_at,
    )


def _encode_cursor(kind: str, *position: str | int) -> str:
    text = json.dumps([kind, *position], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, kind: str, *types: type) -> list[Any]:
    """The position in a cursor `_encode_cursor(kind, ...)` made; `InvalidInput` otherwise."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        value = None
    if (
        isinstance(value, list)
        and len(value) == len(types) + 1
        and value[0] == kind
        and all(type(item) is type_ for item, type_ in zip(value[1:], types, strict=True))
    ):
        return value[1:]
    raise InvalidInput(f'cursor "{cursor}" was not returned by {kind}')


def _filter_sql(task_filter: TaskFilter) -> tuple[list[str], list[Any]]:
    """`WHERE` conditions on `tasks t` for `task_filter`, and their parameters."""
    conditions: list[str] = []
    params: list[Any] = []
    for column in ("status", "assignee"):
        value = getattr(task_filter, column)
        if value is not None:
            conditions.append(f"t.{column} = ?")
            params.append(value)
    if task_filter.label is not None:
        conditions.append(
            "EXISTS (SELECT 1 FROM task_labels l WHERE l.task_id = t.id AND l.label = ?)"
        )
        params.append(task_filter.label)
    if task_filter.updated_since is not None:
        conditions.append("t.updated_at >= ?")
        params.append(task_filter.updated_since)
    linked = (
        "EXISTS (SELECT 1 FROM task_links k"
        " WHERE k.task_id = t.id AND k.plugin = ? AND k.system = ?)"
    )
    if task_filter.linked_keys == ():
        conditions.append("1 = 0")  # `IN ()` is SQLite's, not portable SQL
    elif task_filter.linked_keys is not None:
        # The links' primary key finds the tasks; walking every task to test each would not.
        marks = ", ".join("?" * len(task_filter.linked_keys))
        conditions.append(
            "t.id IN (SELECT k.task_id FROM task_links k"
            f" WHERE k.plugin = ? AND k.system = ? AND k.external_key IN ({marks}))"
        )
        params += [task_filter.linked_plugin, task_filter.linked_system]
        params += task_filter.linked_keys
    elif task_filter.linked_system is not None:
        conditions.append(linked)
        params += [task_filter.linked_plugin, task_filter.linked_system]
    if task_filter.unlinked_system is not None:
        conditions.append(f"NOT {linked}")
        params += [task_filter.unlinked_plugin, task_filter.unlinked_system]
    return conditions, params


def _tasks_by_id(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Task]:
    found: dict[str, Task] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"{_SELECT_TASKS} WHERE id IN ({marks})", chunk):
            task = _task_from_row(row)
            found[task.id] = task
    return found


def _reject_repeated_ids(upserts: list[TaskUpsert]) -> None:
    # One write per task per batch keeps "expected_version" meaning the version before the batch.
    first: dict[str, str] = {}
    for upsert in upserts:
        if upsert.id is None:
            continue
        if upsert.id in first:
            raise InvalidInput(
                f'{upsert.where}.id: task "{upsert.id}" is also written by {first[upsert.id]}; '
                "a batch may write each task once"
            )
        first[upsert.id] = upsert.where


def _append_changes(
    conn: sqlite3.Connection, actor: str, at: str, changes: list[tuple[ChangeOp, _Row]]
) -> None:
    """Add (op, task row) entries to the change feed, in the caller's write transaction.

    Seqs come from a counter row updated inside the write transaction, which keeps the feed
    gapless for readers: BEGIN IMMEDIATE serializes writers on SQLite's write lock, so the
    transaction that takes seqs n+1.. commits after the one that took ..n, and any snapshot
    that holds seq n+1 holds every seq below it. A reader at cursor n thus never sees n+2 and
    later misses an n+1 that commits after its read. (In PostgreSQL the counter row's lock
    serializes writers the same way; a SEQUENCE would not: it numbers in start order, not
    commit order.)
    """
    conn.execute("UPDATE task_change_seq SET last_seq = last_seq + ?", (len(changes),))
    (last,) = conn.execute("SELECT last_seq FROM task_change_seq").fetchone()
    first = last - len(changes) + 1
    conn.executemany(
        _INSERT_CHANGE,
        [(first + i, op, actor, at, *row) for i, (op, row) in enumerate(changes)],
    )


class SQLiteTaskStore(TaskStore):
    """`TaskStore` in one SQLite file (WAL), safe for many threads and several processes.

    `path` may be shared with `SQLiteKVStore`. Writers that find the file locked by another
    process wait up to `busy_timeout` seconds, then fail with `Unavailable`.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self._db = SQLiteConnections(path, name="task store", busy_timeout=busy_timeout)
        with self._db.writing() as conn:
            found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'task_creators'"
            older = conn.execute(found).fetchone() is None
            for statement in _SCHEMA:
                conn.execute(statement)
            if older:
                for statement in _BACKFILL_CREATORS:
                    conn.execute(statement)

    def get(self, task_id: str) -> Task:
        with self._db.reading() as conn:
            row = conn.execute(f"{_SELECT_TASKS} WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise NotFound(f'task "{task_id}" does not exist')
        return _task_from_row(row)

    def query(self, filter: TaskFilter, cursor: str | None, limit: int) -> Page[Task]:
        limit = clamp_limit(limit)
        conditions, params = _filter_sql(filter)
        if cursor is not None:
            conditions.append("(t.updated_at, t.id) > (?, ?)")
            params += _decode_cursor(cursor, "query", str, str)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"{_SELECT_TASKS} t {where} ORDER BY t.updated_at, t.id LIMIT ?"
        with self._db.reading() as conn:
            # One row more than asked tells whether another page follows.
            rows = conn.execute(sql, (*params, limit + 1)).fetchall()
        tasks = [_task_from_row(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return Page(tasks)
        return Page(tasks, _encode_cursor("query", tasks[-1].updated_at, tasks[-1].id))

    def put_many(
        self, items: list[dict[str, Any]], actor: str, bounds: WriteBounds | None = None
    ) -> list[Task]:
        bounds = bounds or WriteBounds()
        # Validate everything before taking the write lock.
        upserts = []
        for i, item in enumerate(items):
            if i % 1000 == 0:
                bounds.check_time()
            upserts.append(TaskUpsert.from_json(item, where=f"tasks[{i}]"))
        _reject_repeated_ids(upserts)
        if not upserts:
            return []
        bounds.check_time()
        with self._db.writing() as conn, _stopped_at(conn, bounds):
            now = _now()
            stored = _tasks_by_id(conn, [u.id for u in upserts if u.id is not None])
            written: list[tuple[ChangeOp, Task]] = []
            relabeled: list[Task] = []
            results: list[Task] = []
            links: list[tuple[str, ...]] = []  # rows of _LINK_COLUMNS
            for i, upsert in enumerate(upserts):
                if i % 1000 == 0:
                    bounds.check_time()
                current = None if upsert.id is None else stored.get(upsert.id)
                check_version(upsert.id, upsert.expected_version, current.version if current else 0)
                if upsert.link_only:
                    if current is None:
                        raise NotFound(f'{upsert.where}.id: task "{upsert.id}" does not exist')
                    task = current
                elif current is None:
                    written.append(("create", task := upsert.create(now)))
                else:
                    written.append(("update", task := upsert.apply(current, now)))
                    if "labels" in upsert.values:
                        relabeled.append(task)
                results.append(task)
                if upsert.link is not None:
                    link = upsert.link
                    links.append(
                        (actor, link.system, link.external_key, task.id, link.snapshot, now)
                    )
            rows = [(op, _task_row(task)) for op, task in written]
            created = [task for op, task in written if op == "create"]
            conn.executemany(_INSERT_TASK, [row for op, row in rows if op == "create"])
            conn.executemany(
                _UPDATE_TASK, [(*row[1:], row[0]) for op, row in rows if op == "update"]
            )
            conn.executemany(
                "DELETE FROM task_labels WHERE task_id = ?", [(task.id,) for task in relabeled]
            )
            conn.executemany(
                "INSERT INTO task_labels (task_id, label) VALUES (?, ?)",
                [(task.id, label) for task in created + relabeled for label in task.labels],
            )
            conn.executemany(_UPSERT_LINK, links)
            if rows:
                _append_changes(conn, actor, now, rows)
            if created:
                live = _count_created(conn, actor, created)
                bounds.check_quota(actor, live - len(created), len(created))
        return results

    def delete(self, task_id: str, expected_version: int | None, actor: str) -> None:
        with self._db.writing() as conn:
            row = conn.execute("SELECT version FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(f'task "{task_id}" does not exist')
            check_version(task_id, expected_version, row[0])
            _uncount_created(conn, task_id)
            # Its labels, links and creator go with it (ON DELETE CASCADE).
            conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
            _append_changes(conn, actor, _now(), [("delete", _tombstone_row(task_id, row[0]))])

    def changes_since(
        self, cursor: str | None, limit: int, *, bare_actor: str | None = None
    ) -> Page[Change]:
        after = 0 if cursor is None else _decode_cursor(cursor, "changes_since", int)[0]
        with self._db.reading() as conn:
            rows = conn.execute(
                f"{_SELECT_CHANGES} WHERE seq > ? ORDER BY seq LIMIT ?", (after, clamp_limit(limit))
            ).fetchall()
        changes = [
            Change(
                seq=seq,
                op=op,
                actor=actor,
                at=at,
                task_id=task[0],
                version=task[-1],
                task=None
                if op == "delete" or actor == bare_actor
                else _task_from_row(task).to_json(),
            )
            for seq, op, actor, at, *task in rows
        ]
        return Page(changes, _encode_cursor("changes_since", changes[-1].seq) if changes else None)

    def get_link(self, plugin: str, system: str, external_key: str) -> Link:
        with self._db.reading() as conn:
            row = conn.execute(
                f"{_SELECT_LINKS} WHERE plugin = ? AND system = ? AND external_key = ?",
                (plugin, system, external_key),
            ).fetchone()
        if row is None:
            raise NotFound(f'no link to "{external_key}" in "{system}"')
        return _link_from_row(row)

    def get_links(self, plugin: str, system: str, external_keys: Sequence[str]) -> list[Link]:
        keys = list(dict.fromkeys(external_keys))
        rows: list[_Row] = []
        with self._db.reading() as conn:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                where = f"plugin = ? AND system = ? AND external_key IN ({marks})"
                rows += conn.execute(
                    f"{_SELECT_LINKS} WHERE {where}", (plugin, system, *chunk)
                ).fetchall()
        return [_link_from_row(row) for row in rows]

    def links_for_task(self, plugin: str, task_id: str) -> list[Link]:
        with self._db.reading() as conn:
            # Sorted here, not by an ORDER BY: that clause matches the primary key's order, and
            # SQLite then walks every link of the plugin (`plugin = ?`) instead of this task's
            # few in `task_links_by_task`, which cost a sync ~1 ms a call at 10,000 links.
            rows = conn.execute(
                f"{_SELECT_LINKS} WHERE task_id = ? AND plugin = ?", (task_id, plugin)
            ).fetchall()
        return sorted(
            (_link_from_row(row) for row in rows), key=lambda x: (x.system, x.external_key)
        )

    def put_link(self, link: Link) -> Link:
        link.validate()
        with self._db.writing() as conn:
            if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (link.task_id,)).fetchone() is None:
                raise NotFound(f'task "{link.task_id}" does not exist')
            stored = replace(link, updated_at=_now())
            conn.execute(_UPSERT_LINK, _link_row(stored))
        return stored

    def delete_link(self, plugin: str, system: str, external_key: str) -> None:
        with self._db.writing() as conn:
            deleted = conn.execute(
                "DELETE FROM task_links WHERE plugin = ? AND system = ? AND external_key = ?",
                (plugin, system, external_key),
            ).rowcount
        if not deleted:
            raise NotFound(f'no link to "{external_key}" in "{system}"')

    def close(self) -> None:
        self._db.close()
