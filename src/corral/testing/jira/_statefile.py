"""The SQLite file that keeps the emulator's issues across restarts (`--state FILE`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..._sqlite import SQLiteConnections
from ._model import ChangeItem, History, Issue

__all__ = ["StateFile"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS issues (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, version INTEGER NOT NULL, fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS histories (
    id INTEGER PRIMARY KEY, issue_id INTEGER NOT NULL, author TEXT NOT NULL,
    created TEXT NOT NULL, items TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS histories_by_issue ON histories (issue_id, id);
"""

_DATETIME_FIELDS = ("created", "updated", "resolutiondate")
# One encoder for all rows: json.dumps with options builds a new encoder on every call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _encode_fields(values: Mapping[str, Any]) -> str:
    plain = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
    }
    return _encode(plain)


def _decode_fields(text: str) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(text)
    for name in _DATETIME_FIELDS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    for name in ("labels", "comment"):
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    return values


def _encode_items(items: Iterable[ChangeItem]) -> str:
    return _encode([item.to_json() for item in items])


def _decode_items(text: str) -> tuple[ChangeItem, ...]:
    return tuple(
        ChangeItem(
            field=i["field"],
            fieldtype=i["fieldtype"],
            field_id=i["fieldId"],
            from_=i["from"],
            from_string=i["fromString"],
            to=i["to"],
            to_string=i["toString"],
        )
        for i in json.loads(text)
    )


class StateFile:
    """Issues, changelog and counters in one SQLite file; every write is one transaction.

    The store calls it under its own write lock, so the file always holds a state the API
    could have served; WAL and SQLite's locking keep it whole if a process dies mid-write.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self._db = SQLiteConnections(
            path, name=f"Jira emulator state {os.fspath(path)}", busy_timeout=10.0
        )
        with self._db.writing() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def load(self) -> tuple[dict[str, int], list[Issue], list[History]]:
        with self._db.reading() as conn:
            counters = {name: value for name, value in conn.execute("SELECT name, value FROM meta")}
            issues = [
                Issue(id=row[0], key=row[1], version=row[2], values=_decode_fields(row[3]))
                for row in conn.execute("SELECT id, key, version, fields FROM issues ORDER BY id")
            ]
            histories = [
                History(
                    id=row[0],
                    issue_id=row[1],
                    author=row[2],
                    created=datetime.fromisoformat(row[3]),
                    items=_decode_items(row[4]),
                )
                for row in conn.execute(
                    "SELECT id, issue_id, author, created, items FROM histories ORDER BY id"
                )
            ]
        return counters, issues, histories

    def write(
        self,
        counters: Mapping[str, int],
        *,
        issues: Iterable[Issue] = (),
        histories: Iterable[History] = (),
        deleted: Iterable[int] = (),
    ) -> None:
        """Save counters, upsert `issues`, add `histories`, drop `deleted` issues, atomically."""
        with self._db.writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", counters.items()
            )
            conn.executemany(
                "INSERT OR REPLACE INTO issues (id, key, version, fields) VALUES (?, ?, ?, ?)",
                ((i.id, i.key, i.version, _encode_fields(i.values)) for i in issues),
            )
            conn.executemany(
                "INSERT INTO histories (id, issue_id, author, created, items)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    (h.id, h.issue_id, h.author, h.created.isoformat(), _encode_items(h.items))
                    for h in histories
                ),
            )
            gone = [(issue_id,) for issue_id in deleted]
            conn.executemany("DELETE FROM issues WHERE id = ?", gone)
            conn.executemany("DELETE FROM histories WHERE issue_id = ?", gone)

    def clear(self) -> None:
        with self._db.writing() as conn:
            conn.execute("DELETE FROM issues")
            conn.execute("DELETE FROM histories")
            conn.execute("DELETE FROM meta")

    def close(self) -> None:
        self._db.close()
