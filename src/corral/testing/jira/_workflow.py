"""Statuses and the transitions between them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_WORKFLOW", "Status", "Transition", "Workflow"]

StatusCategory = Literal["new", "indeterminate", "done"]


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: StatusCategory


@dataclass(frozen=True)
class Transition:
    """A move to `to`; like a team-managed project, each target status has one transition id."""

    id: str
    name: str
    to: Status


class Workflow:
    """A workflow graph: which statuses exist and which transitions each one offers.

    `edges` maps a status name to the names of the statuses reachable from it. The first status
    is where new issues start.
    """

    def __init__(self, statuses: Sequence[Status], edges: Mapping[str, Sequence[str]]):
        if not statuses:
            raise ValueError("a workflow needs at least one status")
        self.statuses = tuple(statuses)
        self._by_name = {s.name.lower(): s for s in statuses}
        self._by_id = {s.id: s for s in statuses}
        self._transition_to = {
            s.name: Transition(id=str((i + 1) * 10 + 1), name=s.name, to=s)
            for i, s in enumerate(statuses)
        }
        self._edges: dict[str, tuple[Transition, ...]] = {}
        for source, targets in edges.items():
            origin = self._require(source)
            self._edges[origin.name] = tuple(
                self._transition_to[self._require(t).name] for t in targets
            )

    @property
    def initial(self) -> Status:
        return self.statuses[0]

    def status(self, name_or_id: str) -> Status | None:
        """The status with this name (any case) or id."""
        return self._by_id.get(name_or_id) or self._by_name.get(name_or_id.lower())

    def transitions_from(self, status: str) -> tuple[Transition, ...]:
        """The transitions offered in `status` (its name or id)."""
        found = self.status(status)
        return self._edges.get(found.name, ()) if found else ()

    def _require(self, name: str) -> Status:
        status = self.status(name)
        if status is None:
            raise ValueError(f"workflow edge names unknown status {name!r}")
        return status


DEFAULT_WORKFLOW = Workflow(
    [
        Status("10000", "To Do", "new"),
        Status("3", "In Progress", "indeterminate"),
        Status("10001", "In Review", "indeterminate"),
        Status("10002", "Done", "done"),
    ],
    {
        "To Do": ["In Progress"],
        "In Progress": ["To Do", "In Review"],
        "In Review": ["In Progress", "Done"],
        "Done": ["In Review", "To Do"],
    },
)
