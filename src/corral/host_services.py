"""Host-wide services the capabilities share: the task store, the KV store, the audit log
(and, in tests, the simulated network).

Each is opened on first use, so a host whose plugins never touch tasks never creates tasks.db.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._audit import AuditLog
    from .capabilities.http import SimulatedNetwork
    from .kvstore import SQLiteKVStore
    from .tasks import TaskStore

__all__ = ["HostServices"]


class HostServices:
    """Owns the shared stores of one `PluginHost` (closing it closes what it opened)."""

    def __init__(
        self,
        data_dir: Path,
        task_store: TaskStore | None = None,
        network: SimulatedNetwork | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.network = network
        """Where plugins' HTTP requests go instead of the internet (tests); None in production."""
        self._task_store = task_store
        self._owns_task_store = task_store is None
        self._kv_store: SQLiteKVStore | None = None
        self._audit: AuditLog | None = None
        self._lock = threading.Lock()

    @property
    def task_store(self) -> TaskStore:
        with self._lock:
            if self._task_store is None:
                from .tasks import SQLiteTaskStore

                self.data_dir.mkdir(parents=True, exist_ok=True)
                self._task_store = SQLiteTaskStore(self.data_dir / "tasks.db")
            return self._task_store

    @property
    def kv_store(self) -> SQLiteKVStore:
        with self._lock:
            if self._kv_store is None:
                from .kvstore import SQLiteKVStore

                self.data_dir.mkdir(parents=True, exist_ok=True)
                self._kv_store = SQLiteKVStore(self.data_dir / "kv.db")
            return self._kv_store

    @property
    def audit(self) -> AuditLog:
        with self._lock:
            if self._audit is None:
                from ._audit import AuditLog
                from .capabilities.http._secrets import REDACTOR

                self.data_dir.mkdir(parents=True, exist_ok=True)
                self._audit = AuditLog(self.data_dir / "audit.log", REDACTOR.redact)
            return self._audit

    def close(self) -> None:
        with self._lock:
            if self._task_store is not None and self._owns_task_store:
                self._task_store.close()
                self._task_store = None
            if self._kv_store is not None:
                self._kv_store.close()
                self._kv_store = None
            if self._audit is not None:
                self._audit.close()
                self._audit = None
