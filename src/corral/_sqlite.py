"""Connections to one SQLite file, shared by the task store and the KV store."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import Unavailable

__all__ = ["SQLiteConnections"]


class SQLiteConnections:
    """Connections to one SQLite file, for a store used by many threads and processes.

    Each thread gets its own connection, so under WAL readers run in parallel and never wait
    for a writer (a single shared connection would queue every plugin's reads behind another
    plugin's big batch). Writers of this process queue on one lock before ``BEGIN IMMEDIATE``:
    SQLite admits one writer at a time anyway, and a lock hands over at once where SQLite's
    busy handler sleeps and polls. Writers in other processes wait on SQLite's lock, up to
    `busy_timeout` seconds.
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str, busy_timeout: float) -> None:
        self._path = os.fspath(path)
        self._name = name
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._registry_lock = threading.Lock()
        self._by_thread: dict[threading.Thread, sqlite3.Connection] = {}
        self._closed = False

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, in autocommit mode: each statement sees one snapshot."""
        with self._translated():
            yield self._connection()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends and rolled back if it raises."""
        with self._translated(), self._write_lock:
            conn = self._connection()
            # IMMEDIATE takes the write lock now: a deferred transaction that read first could
            # fail to upgrade (SQLITE_BUSY without waiting) if another process wrote meanwhile.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise

    def close(self) -> None:
        """Close every thread's connection; later calls raise `Unavailable`."""
        with self._registry_lock:
            self._closed = True
            connections = list(self._by_thread.values())
            self._by_thread.clear()
        for conn in connections:
            conn.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        # Callers see Corral's errors only; sqlite3's are an implementation detail.
        try:
            yield
        except sqlite3.Error as exc:
            raise Unavailable(f"{self._name}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise Unavailable(f"{self._name} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._registry_lock:
                if self._closed:
                    raise Unavailable(f"{self._name} is closed")
                # Threads come and go (thread pools grow and shrink); don't keep their files open.
                for thread in [t for t in self._by_thread if not t.is_alive()]:
                    self._by_thread.pop(thread).close()
                conn = self._connect()
                self._by_thread[threading.current_thread()] = conn
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,  # SQLite's busy timeout: how long to wait for a lock
            # Transactions are explicit (`writing`), not begun behind our back by the module.
            isolation_level=None,
            # Each connection is still used by one thread only; this lets `close` close them all.
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # `synchronous` stays FULL: under NORMAL a power cut can undo commits that a plugin
        # already read from the change feed, and their seqs would then be handed out again.
        return conn
