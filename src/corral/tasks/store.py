"""`TaskStore`: what Corral needs from the host application's task storage.

`SQLiteTaskStore` is the default; a host application with its own database implements this
protocol instead (`TaskUpsert` and `check_version` carry the upsert rules).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._errors import HostTimeout, InvalidInput
from .model import Change, Link, Page, Task, TaskFilter

__all__ = ["MAX_LIMIT", "TaskStore", "WriteBounds", "clamp_limit"]

MAX_LIMIT = 1000
"""The most items one page holds."""


def clamp_limit(limit: int) -> int:
    """A page size within 1..MAX_LIMIT."""
    return max(1, min(limit, MAX_LIMIT))


@dataclass(frozen=True)
class WriteBounds:
    """What one `put_many` may do: a plugin's writes carry its call's deadline and quota."""

    deadline: float | None = None
    """A `time.monotonic()` value: a batch not committed by then is rolled back."""
    max_created: int | None = None
    """The most tasks the actor may have created (and not since deleted), this batch included."""
    quota_setting: str = ""
    """Where the operator sets `max_created`, as it wrote its settings (for the message)."""

    def check_time(self, reserve: float = 0.0) -> None:
        """`HostTimeout` once less than `reserve` seconds are left before the deadline."""
        if self.deadline is not None and time.monotonic() + reserve >= self.deadline:
            raise HostTimeout("the call's deadline passed before the task batch was stored")

    def check_quota(self, actor: str, existing: int, new: int) -> None:
        """`InvalidInput` if `new` more tasks would take `actor` past `max_created`."""
        if self.max_created is not None and new and existing + new > self.max_created:
            where = f" ({self.quota_setting})" if self.quota_setting else ""
            raise InvalidInput(
                f"the batch would create {new} tasks; {actor} has {existing} of its quota of "
                f"{self.max_created}{where}"
            )


class TaskStore(Protocol):
    """The host application's tasks, their external links and their change feed.

    `actor` is ``"host"`` for the host application's own writes and the plugin's name for a
    plugin's, so a sync plugin can skip changes it made itself.
    """

    def get(self, task_id: str) -> Task:
        """The task `task_id`; `NotFound` if there is none."""
        ...

    def query(self, filter: TaskFilter, cursor: str | None, limit: int) -> Page[Task]:
        """Tasks matching `filter`, ordered by (updated_at, id), `limit` (clamped to
        1..MAX_LIMIT) at a time.

        `cursor` is a page's `next_cursor`; pagination is by key, so pages neither repeat nor
        skip tasks that were not updated meanwhile.
        """
        ...

    def put_many(
        self, items: list[dict[str, Any]], actor: str, bounds: WriteBounds | None = None
    ) -> list[Task]:
        """Create or update tasks, all in one transaction; returns them as stored, in order.

        `bounds` come with a plugin's writes: past its deadline (`bounds.check_time`, checked
        last before commit) or over its quota (`bounds.check_quota`) nothing is written.

        Each item is a task's JSON object plus an optional ``expected_version`` (see
        `TaskUpsert`): no id creates a task with a new id; an id that exists updates the fields
        given; an id that does not exist creates the task with that id. An item may carry a
        ``link`` (``system``, ``external_key``, ``snapshot``): `actor`'s link to the task, written
        in the same transaction; an item with only an id (and ``expected_version``) and a link
        writes just the link (no new version, no change; `NotFound` if the task does not
        exist). Any invalid item (`InvalidInput`) or version mismatch (`Conflict`) fails the
        whole batch.
        """
        ...

    def delete(self, task_id: str, expected_version: int | None, actor: str) -> None:
        """Delete a task and its links, leaving a tombstone in the change feed.

        `NotFound` if there is no such task; `Conflict` if `expected_version` is given and
        differs from the stored version.
        """
        ...

    def changes_since(
        self, cursor: str | None, limit: int, *, bare_actor: str | None = None
    ) -> Page[Change]:
        """Up to `limit` changes after `cursor` (None: from the start), oldest first.

        `next_cursor` is where to resume, and stays valid across restarts; it is None only when
        there was nothing new, in which case keep the cursor you passed. Every create, update
        and delete appears exactly once, in commit order.

        Changes written by `bare_actor` come without their task (`task` None): a plugin reading
        the feed skips its own writes, and after a full sync those are most of it.
        """
        ...

    def get_link(self, plugin: str, system: str, external_key: str) -> Link:
        """`plugin`'s link for `external_key` in `system`; `NotFound` if there is none."""
        ...

    def get_links(self, plugin: str, system: str, external_keys: Sequence[str]) -> list[Link]:
        """`plugin`'s links in `system` for those of `external_keys` that have one (a page's
        worth of `get_link` in one read), in no particular order."""
        ...

    def links_for_task(self, plugin: str, task_id: str) -> list[Link]:
        """`plugin`'s links to the task `task_id` (none if the task does not exist)."""
        ...

    def put_link(self, link: Link) -> Link:
        """Create or replace a link; returns it as stored. `NotFound` if its task does not
        exist; `InvalidInput` if a field is empty or the snapshot is not JSON text."""
        ...

    def delete_link(self, plugin: str, system: str, external_key: str) -> None:
        """Delete a link; `NotFound` if there is none."""
        ...

    def close(self) -> None:
        """Release the store's resources; it cannot be used afterwards."""
        ...
