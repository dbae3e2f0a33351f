"""The host's audit log: one JSON line per consequential action.

Recorded: plugin loads, unloads and load failures (with the bundle's checksum), every call
(plugin, command, duration, outcome), task and link writes (ids, versions), kv writes (keys,
sizes), permission denials, outbound HTTP (one line per request and redirect hop), and each
`load()` of the whole host. Values never are: not task fields, not kv values, not bodies, not
config; every text field also passes through the secret redactor.

Every line written while a plugin call runs carries that call's `call_id`, so the entries of one
call can be read together (`corral audit --call ID`). The id lives in a context variable: host
functions run on the thread that called into the guest, so a capability records an entry in one
line, without being handed the id.

Lines go to a file (appended, one write per line, safe across threads; rotated past `max_bytes`
into ``audit.log.1`` … ``audit.log.N``) and to the ``corral.audit`` logger.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._errors import CorralError, PluginError, PluginTrap
from ._units import parse_duration

__all__ = [
    "AuditLog",
    "audited_call",
    "current_call_id",
    "new_call_id",
    "parse_since",
    "read_audit",
    "select",
]

logger = logging.getLogger("corral.audit")

_CALL_ID: ContextVar[str | None] = ContextVar("corral_audit_call_id", default=None)


def new_call_id() -> str:
    """A fresh id for one plugin call (16 hex digits)."""
    return uuid.uuid4().hex[:16]


def current_call_id() -> str | None:
    """The id of the plugin call running on this thread, if any."""
    return _CALL_ID.get()


def _no_redaction(text: str) -> str:
    return text


class AuditLog:
    """Appends audit lines to `path` (None: the ``corral.audit`` logger only).

    `redact` is applied to every text value (the host passes its secret redactor). The file is
    rotated when it passes `max_bytes`: ``audit.log`` becomes ``audit.log.1``, and so on up to
    `backups` old files, the oldest dropped.
    """

    def __init__(
        self,
        path: Path | None = None,
        redact: Callable[[str], str] = _no_redaction,
        *,
        max_bytes: int = 64 << 20,
        backups: int = 3,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._redact = redact
        self._lock = threading.Lock()
        self._file = None if path is None else path.open("a", encoding="utf-8", buffering=1)

    def record(self, event: str, plugin: str | None = None, **fields: Any) -> None:
        """Write one line: the time, `event`, `plugin`, the current call's id and `fields`.

        `fields` must hold names, ids, sizes and outcomes, never values a plugin stored or sent.
        """
        entry: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            "plugin": plugin,
            "call_id": _CALL_ID.get(),
        }
        entry |= {key: self._redacted(value) for key, value in fields.items()}
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock:
            if self._file is not None:
                position = self._file.tell()
                if position and position + len(line.encode()) + 1 > self.max_bytes:
                    self._rotate()
                self._file.write(line + "\n")
        logger.info("%s", line)

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, list | tuple):
            return [self._redacted(item) for item in value]
        if isinstance(value, dict):
            return {key: self._redacted(item) for key, item in value.items()}
        return value

    def _rotate(self) -> None:
        assert self.path is not None and self._file is not None
        self._file.close()
        for older, newer in reversed(list(itertools.pairwise(_numbered(self.path, self.backups)))):
            if older.exists():
                os.replace(older, newer)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)

    def records(self) -> list[dict[str, Any]]:
        """Every line of the current file, parsed (rotated files: `read_audit`)."""
        if self.path is None or not self.path.exists():
            return []
        with self._lock, self.path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _numbered(path: Path, backups: int) -> list[Path]:
    """``audit.log``, ``audit.log.1`` … ``audit.log.<backups>``: newest first."""
    return [path, *(path.with_name(f"{path.name}.{i}") for i in range(1, backups + 1))]


def read_audit(path: Path) -> Iterator[dict[str, Any]]:
    """Every entry of the audit log at `path` and its rotated files, oldest first.

    A line that is not JSON (a torn write after a crash) is skipped.
    """
    rotated = sorted(
        (p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    for file in [*rotated, path]:
        if not file.is_file():
            continue
        with file.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict):
                    yield entry


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``1d`` ago, or an ISO 8601 date or time (UTC unless it says)."""
    try:
        ago = parse_duration(text)
    except ValueError:
        pass
    else:
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time ago (30m, 2h, 1d) nor an ISO 8601 time (2026-11-23T15:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def select(
    entries: Iterator[dict[str, Any]],
    *,
    plugin: str | None = None,
    since: datetime | None = None,
    call_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The entries matching every filter given."""
    for entry in entries:
        if plugin is not None and entry.get("plugin") != plugin:
            continue
        if call_id is not None and entry.get("call_id") != call_id:
            continue
        if since is not None:
            try:
                if datetime.fromisoformat(str(entry.get("ts"))) < since:
                    continue
            except ValueError:
                continue
        yield entry


def _outcome(error: BaseException) -> str:
    if isinstance(error, PluginError):
        return f"error:{error.kind}"
    if isinstance(error, PluginTrap):
        return f"trap:{error.trap}"
    if isinstance(error, CorralError):
        return f"failed:{type(error).__name__}"
    return f"host-failure:{type(error).__name__}"


@contextmanager
def audited_call(audit: AuditLog, plugin: str, command: str) -> Iterator[str]:
    """Run one plugin call under a fresh call id; record it (duration, outcome) when it ends."""
    call_id = new_call_id()
    token = _CALL_ID.set(call_id)
    start = time.monotonic()
    outcome = "ok"
    try:
        yield call_id
    except BaseException as exc:
        outcome = _outcome(exc)
        raise
    finally:
        duration_ms = round((time.monotonic() - start) * 1000, 1)
        audit.record("call", plugin, command=command, duration_ms=duration_ms, outcome=outcome)
        _CALL_ID.reset(token)
