"""`SQLiteKVStore`: plugin-private key-value state (sync cursors, base snapshots) in SQLite.

Each plugin has its own namespace; the host passes the plugin's name, never the plugin.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from dataclasses import dataclass

from ._errors import InvalidInput, NotFound
from ._sqlite import SQLiteConnections
from ._units import format_size
from .tasks.store import clamp_limit

__all__ = ["KvLimits", "SQLiteKVStore"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv_entries (
        plugin TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (plugin, key)
    )""",
    # Bytes (keys + values) per plugin, kept in step by every write: summing a plugin's values
    # on each write to check its quota would cost a scan of all of them.
    """CREATE TABLE IF NOT EXISTS kv_usage (
        plugin TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL
    )""",
)


def _prefix_end(prefix: str) -> str | None:
    """An exclusive upper bound for the keys starting with `prefix` (None: there is none).

    Keys compare as UTF-8 bytes, which order like code points, so bumping the last code point
    that can be bumped gives a bound that a range scan on the index can use.
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        # Surrogates cannot be in a key (they have no UTF-8 form): the next code point is 0xE000.
        following = 0xE000
    return stem[:-1] + chr(following)


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except ValueError:  # bad base64 or bad UTF-8
        raise InvalidInput(f'kv cursor "{cursor}" was not returned by list_keys') from None


@dataclass(frozen=True)
class KvLimits:
    """Size limits for one plugin's state; the store's own limits apply where None."""

    max_value_bytes: int | None = None
    max_plugin_bytes: int | None = None


_NO_LIMITS = KvLimits()


class SQLiteKVStore:
    """Byte values under text keys, namespaced by plugin name, with per-plugin limits.

    A plugin's usage is the UTF-8 size of its keys plus the size of its values. Writes over a
    limit raise `InvalidInput` naming the limit. `path` may be shared with `SQLiteTaskStore`;
    threads and processes may use the store at once (see `SQLiteConnections`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_key_bytes: int = 512,
        max_value_bytes: int = 1 << 20,
        max_plugin_bytes: int = 64 << 20,
        busy_timeout: float = 5.0,
    ) -> None:
        self._max_key = max_key_bytes
        self._max_value = max_value_bytes
        self._max_plugin = max_plugin_bytes
        self._db = SQLiteConnections(path, name="kv store", busy_timeout=busy_timeout)
        with self._db.writing() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def get(self, plugin: str, key: str) -> bytes:
        """The value at `key`; `NotFound` if it is not set."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT value FROM kv_entries WHERE plugin = ? AND key = ?", (plugin, key)
            ).fetchone()
        if row is None:
            raise NotFound(f'kv key "{key}" is not set')
        return bytes(row[0])

    def set(self, plugin: str, key: str, value: bytes, limits: KvLimits = _NO_LIMITS) -> None:
        """Set `key` to `value`."""
        key_size = self._check(key, value, limits)
        with self._db.writing() as conn:
            row = conn.execute(
                "SELECT length(value) FROM kv_entries WHERE plugin = ? AND key = ?", (plugin, key)
            ).fetchone()
            old_size = None if row is None else row[0]
            self._write(conn, plugin, key, key_size, value, old_size, limits)

    def delete(self, plugin: str, key: str) -> bool:
        """Remove `key`; returns whether it was set."""
        with self._db.writing() as conn:
            row = conn.execute(
                "SELECT length(value) FROM kv_entries WHERE plugin = ? AND key = ?", (plugin, key)
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM kv_entries WHERE plugin = ? AND key = ?", (plugin, key))
            self._add_usage(conn, plugin, -(len(key.encode()) + row[0]))
        return True

    def list_keys(
        self, plugin: str, prefix: str, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Keys starting with `prefix`, in order, `limit` (clamped to 1..1000) at a time.

        Returns the keys and the cursor of the next page (None on the last page).
        """
        limit = clamp_limit(limit)
        conditions = ["plugin = ?", "key >= ?"]
        params: list[object] = [plugin, prefix]
        end = _prefix_end(prefix)
        if end is not None:
            conditions.append("key < ?")
            params.append(end)
        if cursor is not None:
            conditions.append("key > ?")
            params.append(_decode_cursor(cursor))
        with self._db.reading() as conn:
            keys = [
                key
                for (key,) in conn.execute(
                    f"SELECT key FROM kv_entries WHERE {' AND '.join(conditions)}"
                    " ORDER BY key LIMIT ?",
                    (*params, limit + 1),
                )
            ]
        if len(keys) <= limit:
            return keys, None
        return keys[:limit], _encode_cursor(keys[limit - 1])

    def compare_and_set(
        self,
        plugin: str,
        key: str,
        expected: bytes | None,
        value: bytes,
        limits: KvLimits = _NO_LIMITS,
    ) -> bool:
        """Set `key` to `value` only if its value is `expected` (None: only if `key` is unset).

        Returns whether the value was set. Atomic, across threads and processes.
        """
        key_size = self._check(key, value, limits)
        with self._db.writing() as conn:
            row = conn.execute(
                "SELECT value FROM kv_entries WHERE plugin = ? AND key = ?", (plugin, key)
            ).fetchone()
            current = None if row is None else bytes(row[0])
            if current != expected:
                return False
            old_size = None if current is None else len(current)
            self._write(conn, plugin, key, key_size, value, old_size, limits)
        return True

    def usage(self, plugin: str) -> int:
        """Bytes `plugin` stores: its keys (UTF-8) plus its values."""
        with self._db.reading() as conn:
            return self._usage(conn, plugin)

    def close(self) -> None:
        """Close the store; it cannot be used afterwards."""
        self._db.close()

    def _check(self, key: str, value: bytes, limits: KvLimits) -> int:
        """Check `key` and `value` against the per-key and per-value limits; the key's size."""
        if not key:
            raise InvalidInput("kv key must not be empty")
        try:
            key_size = len(key.encode())
        except UnicodeEncodeError:
            raise InvalidInput(f"kv key {key!r} is not valid Unicode text") from None
        if key_size > self._max_key:
            shown = key if len(key) <= 40 else key[:37] + "..."
            raise InvalidInput(
                f'kv key "{shown}" is {format_size(key_size)};'
                f" the limit is {format_size(self._max_key)} per key"
            )
        max_value = limits.max_value_bytes or self._max_value
        if len(value) > max_value:
            raise InvalidInput(
                f'kv value for "{key}" is {format_size(len(value))};'
                f" the limit is {format_size(max_value)} per value"
            )
        return key_size

    def _write(
        self,
        conn: sqlite3.Connection,
        plugin: str,
        key: str,
        key_size: int,
        value: bytes,
        old_value_size: int | None,
        limits: KvLimits,
    ) -> None:
        """Store `value` at `key` (whose old value has `old_value_size`, None: unset)."""
        growth = key_size + len(value)
        if old_value_size is not None:
            growth -= key_size + old_value_size
        used = self._usage(conn, plugin)
        # Only growth is refused, so a plugin over a lowered limit can still shrink its state.
        max_plugin = limits.max_plugin_bytes or self._max_plugin
        if growth > 0 and used + growth > max_plugin:
            raise InvalidInput(
                f'kv store of plugin "{plugin}" would hold {format_size(used + growth)};'
                f" the limit is {format_size(max_plugin)} per plugin"
            )
        if old_value_size is None:
            conn.execute(
                "INSERT INTO kv_entries (plugin, key, value) VALUES (?, ?, ?)", (plugin, key, value)
            )
        else:
            conn.execute(
                "UPDATE kv_entries SET value = ? WHERE plugin = ? AND key = ?", (value, plugin, key)
            )
        self._add_usage(conn, plugin, growth)

    @staticmethod
    def _usage(conn: sqlite3.Connection, plugin: str) -> int:
        row = conn.execute("SELECT bytes FROM kv_usage WHERE plugin = ?", (plugin,)).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _add_usage(conn: sqlite3.Connection, plugin: str, delta: int) -> None:
        conn.execute(
            "INSERT INTO kv_usage (plugin, bytes) VALUES (?, ?)"
            " ON CONFLICT (plugin) DO UPDATE SET bytes = kv_usage.bytes + excluded.bytes",
            (plugin, delta),
        )
