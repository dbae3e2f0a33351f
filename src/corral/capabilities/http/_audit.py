"""The audit entries of outbound HTTP: one per request and per redirect hop.

They go to the host's audit log (`corral._audit`) as ``"event": "http"`` lines. Query strings
are replaced by ``?<redacted>`` (they often carry tokens), user info and fragments are dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from ..._audit import AuditLog

__all__ = ["AuditEntry", "Decision", "redact_url", "write_entry"]

Decision = Literal["allow", "deny"]


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


def write_entry(audit: AuditLog, entry: AuditEntry) -> None:
    """Record `entry` in `audit`, its URL stripped of what may carry secrets."""
    fields = asdict(entry)
    del fields["plugin"]
    fields["url"] = redact_url(entry.url)
    fields["duration_ms"] = round(entry.duration_ms, 1)
    audit.record("http", entry.plugin, **fields)


def redact_url(url: str) -> str:
    """`url` without user info or fragment, its query (if any) replaced by ``?<redacted>``."""
    base, has_query, _ = url.partition("#")[0].partition("?")
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        base = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return base + ("?<redacted>" if has_query else "")
