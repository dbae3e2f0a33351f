"""The sync protocol's JSON shapes as typed values (see plugin-sdk/sync-protocol.md).

Plugin answers are validated at this edge: a missing or mistyped field raises `ProtocolError`
naming the command and the field, so a connector that drifts from the protocol fails loudly
instead of showing wrong numbers. Keys this version does not know are ignored, so connectors
may add their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from .._errors import ProtocolError
from .._validation import describe_validation_error

__all__ = [
    "Conflict",
    "Counts",
    "ItemError",
    "Resolution",
    "SyncProgress",
    "SyncReport",
    "SyncStatus",
    "parse_answer",
]

Mode = Literal["full", "incremental"]


@dataclass(frozen=True)
class Counts:
    """What one direction (``pull`` or ``push``) did to items, cumulative for a run."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: int = 0
    errors: int = 0
    deleted: int = 0

    @property
    def processed(self) -> int:
        """Items looked at, whatever became of them."""
        return (
            self.created + self.updated + self.unchanged + self.conflicts + self.errors
            + self.deleted
        )  # fmt: skip


@dataclass(frozen=True)
class ItemError:
    """One item that could not be synced; the run went on without it."""

    direction: str
    reason: str
    key: str | None = None
    """The remote item's key (a Jira issue key), when there is one."""
    task_id: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.key, self.task_id and f"task {self.task_id}") if x)
        return f"{self.direction} {where or '-'}: {self.reason}"


@dataclass(frozen=True)
class SyncProgress:
    """One `sync` call's answer: where the run stands after this slice of work."""

    run_id: str
    mode: Mode
    done: bool
    phase: str
    """``pull``, ``push`` or ``finished`` (connectors may name other phases)."""
    dry_run: bool = False
    counts: dict[str, Counts] = field(default_factory=dict)
    remaining: int | None = None
    """The connector's estimate of items left in this phase; None when it cannot tell."""
    errors: list[ItemError] = field(default_factory=list)
    """Errors of this slice only."""
    report: dict[str, Any] | None = None
    """The run's final report, once `done`."""

    @property
    def processed(self) -> int:
        """Items looked at so far in the run, over all directions."""
        return sum(c.processed for c in self.counts.values())


@dataclass(frozen=True)
class SyncReport:
    """What a finished run did: per-direction counts, every item error, conflicts."""

    run_id: str
    mode: Mode
    dry_run: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float = 0.0
    counts: dict[str, Counts] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    conflicts: int = 0
    """Conflicts this run found."""
    open_conflicts: int = 0
    """Conflicts waiting to be resolved once the run ended (this run's and earlier ones)."""
    calls: int = 0
    """How many `sync` calls this process made to finish the run (a resumed run counts only
    its own)."""

    @property
    def clean(self) -> bool:
        """No item failed and no conflict waits for a person."""
        return not self.errors and self.open_conflicts == 0


@dataclass(frozen=True)
class SyncStatus:
    """A connector's `status` answer."""

    running: dict[str, Any] | None = None
    """The run in progress (``run_id``, ``mode``, ``phase``, ``started_at``, ``counts``): the
    next `sync` resumes it."""
    last_runs: list[SyncReport] = field(default_factory=list)
    """The latest finished runs' reports, newest first."""
    open_conflicts: int = 0


@dataclass(frozen=True)
class Conflict:
    """A field changed on both sides to different values, waiting for a person to decide."""

    id: str
    task_id: str
    field: str
    base: Any = None
    """The last value both sides agreed on."""
    local: Any = None
    remote: Any = None
    external_key: str | None = None
    detected_at: str | None = None


@dataclass(frozen=True)
class Resolution:
    """The value a resolved conflict settled on, and where it was written."""

    resolved: str
    field: str
    value: Any = None
    pushed: bool = False
    pulled: bool = False


T = TypeVar("T")

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def parse_answer(kind: type[T], data: Any, plugin: str, command: str) -> T:
    """`data` (a decoded plugin answer) as a `kind`; `ProtocolError` names what is wrong."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    try:
        value: T = adapter.validate_python(data)
    except ValidationError as exc:
        where = f"plugin {plugin!r}: {command!r} answer"
        raise ProtocolError(describe_validation_error(where, exc)) from None
    return value
