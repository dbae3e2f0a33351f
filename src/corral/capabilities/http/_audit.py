"""The audit log of outbound HTTP: one JSON line per request and per redirect hop.

Lines go to a file (appended, one write per line, safe across threads) and to the
``corral.audit`` logger. Query strings are replaced by ``?<redacted>`` (they often carry tokens),
user info and fragments are dropped, and every text field passes through the secret redactor.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ._secrets import REDACTOR, Redactor

__all__ = ["AuditEntry", "AuditLog", "Decision", "redact_url"]

Decision = Literal["allow", "deny"]

logger = logging.getLogger("corral.audit")


@dataclass(frozen=True)
class AuditEntry:
    """What happened to one request or redirect hop.

    `decision` is "allow" when the request went out on the network, "deny" when the host stopped
    it first; `reason` says why it was denied, or what ended an allowed request early.
    """

    plugin: str
    method: str
    url: str
    decision: Decision
    status: int | None = None
    bytes_out: int = 0
    bytes_in: int = 0
    duration_ms: float = 0.0
    reason: str | None = None


class AuditLog:
    """Appends `AuditEntry` lines to `path` (None: the logger only).

    The file is rotated when it passes `max_bytes`: ``audit.log`` becomes ``audit.log.1``, and
    so on up to `backups` old files, the oldest dropped.
    """

    def __init__(
        self,
        path: Path | None = None,
        redactor: Redactor = REDACTOR,
        *,
        max_bytes: int = 64 << 20,
        backups: int = 3,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._redactor = redactor
        self._lock = threading.Lock()
        self._file = None if path is None else path.open("a", encoding="utf-8", buffering=1)

    def write(self, entry: AuditEntry) -> None:
        """Record `entry`, stamped with the current UTC time."""
        redact = self._redactor.redact
        fields = asdict(entry)
        fields["url"] = redact_url(entry.url)
        fields["duration_ms"] = round(entry.duration_ms, 1)
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds")} | {
            key: redact(value) if isinstance(value, str) else value for key, value in fields.items()
        }
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            if self._file is not None:
                position = self._file.tell()
                if position and position + len(line.encode()) + 1 > self.max_bytes:
                    self._rotate()
                self._file.write(line + "\n")
        logger.info("%s", line)

    def _rotate(self) -> None:
        assert self.path is not None and self._file is not None
        self._file.close()
        numbered = [self.path.with_name(f"{self.path.name}.{i}") for i in range(self.backups + 1)]
        numbered[0] = self.path
        for older, newer in reversed(list(itertools.pairwise(numbered))):
            if older.exists():
                os.replace(older, newer)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)

    def records(self) -> list[dict[str, Any]]:
        """Every line of the file, parsed (for tests and tooling)."""
        if self.path is None or not self.path.exists():
            return []
        with self._lock, self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def redact_url(url: str) -> str:
    """`url` without user info or fragment, its query (if any) replaced by ``?<redacted>``."""
    base, has_query, _ = url.partition("#")[0].partition("?")
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        base = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return base + ("?<redacted>" if has_query else "")
