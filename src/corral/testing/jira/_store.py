"""The issues, their changelogs, and the one lock every write takes."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from ._clock import Clock
from ._hooks import ChangeListener
from ._model import ChangeItem, History, Issue, IssueEvent, User
from ._statefile import StateFile

__all__ = ["IssueStore"]

_log = logging.getLogger(__name__)

Describe = Callable[[str, Any, Any], ChangeItem | None]
"""`(field id, old value, new value) -> ChangeItem`, for the changelog of an update; None
for fields Jira does not log (a new comment moves `updated` but leaves no changelog entry)."""

_FIRST_ISSUE_ID = 10000
_FIRST_HISTORY_ID = 10000
_MILLISECOND = timedelta(milliseconds=1)


class IssueStore:
    """Every issue's current version, its changelog, and the writes not yet visible to search.

    Writes take one lock, so concurrent writers are applied one after another (last write
    wins, as on Jira, where `PUT /issue` has no version check). With a state file each write
    is also one SQLite transaction, made before the in-memory state changes.
    """

    def __init__(
        self,
        project_key: str,
        clock: Clock,
        describe: Describe,
        *,
        state_file: str | os.PathLike[str] | None = None,
    ):
        self.project_key = project_key
        self.clock = clock
        self._describe = describe
        self.lock = threading.RLock()
        self._listeners: list[ChangeListener] = []
        self._file = StateFile(state_file) if state_file is not None else None
        #: Grows on every write: caches of search results compare it.
        self.generation = 0
        self.search_lag = timedelta()
        # (time of write, issue id, the version before it) for writes search cannot see yet
        self._unseen: deque[tuple[datetime, int, Issue | None]] = deque()
        self._issues: dict[int, Issue] = {}
        self._by_key: dict[str, int] = {}
        self._histories: dict[int, list[History]] = {}
        self._next_id = _FIRST_ISSUE_ID
        self._next_number = 1
        self._next_history_id = _FIRST_HISTORY_ID
        self._next_comment_id = _FIRST_HISTORY_ID
        self._seq = 0
        if self._file is not None:
            counters, issues, histories = self._file.load()
            self._next_id = counters.get("next_id", self._next_id)
            self._next_number = counters.get("next_number", self._next_number)
            self._next_history_id = counters.get("next_history_id", self._next_history_id)
            self._next_comment_id = counters.get("next_comment_id", self._next_comment_id)
            self._seq = counters.get("seq", 0)
            for issue in issues:
                self._put(issue)
            for history in histories:
                self._histories.setdefault(history.issue_id, []).append(history)

    def _reset_memory(self) -> None:
        self._issues = {}
        self._by_key = {}
        self._histories = {}
        self._next_id = _FIRST_ISSUE_ID
        self._next_number = 1
        self._next_history_id = _FIRST_HISTORY_ID
        self._next_comment_id = _FIRST_HISTORY_ID
        self._seq = 0
        self._unseen.clear()

    # -- reads ----------------------------------------------------------------------------

    def is_empty(self) -> bool:
        return not self._issues

    def __len__(self) -> int:
        return len(self._issues)

    def get(self, id_or_key: str) -> Issue | None:
        """The issue with this id (digits) or key (any case), if it exists."""
        if id_or_key.isdigit():
            return self._issues.get(int(id_or_key))
        issue_id = self._by_key.get(id_or_key.upper())
        return None if issue_id is None else self._issues.get(issue_id)

    def current(self) -> list[Issue]:
        return list(self._issues.values())

    def histories(self, issue_id: int) -> list[History]:
        return list(self._histories.get(issue_id, ()))

    def searchable(self, reconcile: frozenset[int] = frozenset()) -> tuple[list[Issue], bool]:
        """The issues as `/search/jql` sees them now, and whether that view can be cached.

        Under search lag, a write stays invisible until `search_lag` has passed: search sees
        the version from before it (or nothing, for an issue created since), except for the
        issue ids in `reconcile`, which Jira's `reconcileIssues` shows as they are now. Such a
        view changes with time alone, so it must not be cached.
        """
        with self.lock:
            cutoff = self.clock.now() - self.search_lag
            while self._unseen and self._unseen[0][0] <= cutoff:
                self._unseen.popleft()
            if not self._unseen:
                return list(self._issues.values()), True
            before: dict[int, Issue | None] = {}
            for _, issue_id, prior in self._unseen:
                if issue_id not in reconcile:
                    before.setdefault(issue_id, prior)
            view = [issue for i, issue in self._issues.items() if i not in before]
            view.extend(prior for prior in before.values() if prior is not None)
            return view, False

    # -- writes ---------------------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def create(self, values: Mapping[str, Any], user: User) -> Issue:
        """Store a new issue; `created` and `updated` are set to now."""
        with self.lock:
            now = self.clock.now()
            number = self._next_number
            issue = Issue(
                id=self._next_id,
                key=f"{self.project_key}-{number}",
                version=1,
                values={**values, "created": now, "updated": now},
            )
            self._next_id += 1
            self._next_number += 1
            self._commit("created", issue, None, None, user, now)
            return issue

    def update(self, issue: Issue, changes: Mapping[str, Any], user: User) -> Issue:
        """Apply `changes` (field id → stored value) to the current version of `issue`.

        Fields whose value does not change are left out; if none changes, nothing is written.
        Otherwise `updated` moves forward (strictly, even within one millisecond) and one
        changelog entry records the changed fields that Jira logs.
        """
        with self.lock:
            current = self._issues.get(issue.id)
            if current is None:
                raise KeyError(issue.key)
            changed = {k: v for k, v in changes.items() if current.values.get(k) != v}
            if not changed:
                return current
            now = max(self.clock.now(), current.values["updated"] + _MILLISECOND)
            described = (self._describe(k, current.values.get(k), v) for k, v in changed.items())
            items = tuple(item for item in described if item is not None)
            history = None
            if items:
                history = History(
                    id=self._next_history_id,
                    issue_id=current.id,
                    author=user.account_id,
                    created=now,
                    items=items,
                )
                self._next_history_id += 1
            updated = Issue(
                id=current.id,
                key=current.key,
                version=current.version + 1,
                values={**current.values, **changed, "updated": now},
            )
            self._commit("updated", updated, current, history, user, now)
            return updated

    def delete(self, issue: Issue, user: User) -> None:
        with self.lock:
            current = self._issues.get(issue.id)
            if current is None:
                raise KeyError(issue.key)
            self._commit("deleted", current, current, None, user, self.clock.now())

    def add_many(self, issues: Iterable[Issue], histories: Iterable[History] = ()) -> None:
        """Bulk-load issues (seeding): no events, one transaction; ids must be fresh."""
        with self.lock:
            batch = list(issues)
            batch_histories = list(histories)
            for issue in batch:
                self._next_id = max(self._next_id, issue.id + 1)
                self._next_number = max(self._next_number, issue.number + 1)
            for history in batch_histories:
                self._next_history_id = max(self._next_history_id, history.id + 1)
            if self._file is not None:
                self._file.write(self._counters(), issues=batch, histories=batch_histories)
            for issue in batch:
                self._put(issue)
            for history in batch_histories:
                self._histories.setdefault(history.issue_id, []).append(history)
            self.generation += 1

    def next_ids(self) -> tuple[int, int, int]:
        """`(next issue id, next issue number, next changelog id)`, for bulk loads."""
        return self._next_id, self._next_number, self._next_history_id

    def allocate_comment_id(self) -> int:
        """A new comment id; call under `lock`, then write the comment (which saves the count)."""
        with self.lock:
            self._next_comment_id += 1
            return self._next_comment_id - 1

    def clear(self) -> None:
        """Forget every issue and changelog entry; numbering starts again."""
        with self.lock:
            if self._file is not None:
                self._file.clear()
            self._reset_memory()
            self.generation += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    # -- internals -------------------------------------------------------------------------

    def _counters(self) -> dict[str, int]:
        return {
            "next_id": self._next_id,
            "next_number": self._next_number,
            "next_history_id": self._next_history_id,
            "next_comment_id": self._next_comment_id,
            "seq": self._seq,
        }

    def _put(self, issue: Issue) -> None:
        self._issues[issue.id] = issue
        self._by_key[issue.key] = issue.id

    def _commit(
        self,
        kind: Literal["created", "updated", "deleted"],
        issue: Issue,
        prior: Issue | None,
        history: History | None,
        user: User,
        now: datetime,
    ) -> None:
        self._seq += 1
        if self._file is not None:
            # The file first: if it fails, memory still matches it and the client gets a 500.
            self._file.write(
                self._counters(),
                issues=() if kind == "deleted" else (issue,),
                histories=() if history is None else (history,),
                deleted=(issue.id,) if kind == "deleted" else (),
            )
        if kind == "deleted":
            del self._issues[issue.id]
            del self._by_key[issue.key]
            self._histories.pop(issue.id, None)
        else:
            self._put(issue)
            if history is not None:
                self._histories.setdefault(issue.id, []).append(history)
        if self.search_lag > timedelta():
            self._unseen.append((now, issue.id, prior))
        self.generation += 1
        event = IssueEvent(
            kind=kind, issue=issue, history=history, user=user, timestamp=now, seq=self._seq
        )
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                # The write is done; a broken listener must not turn it into a failed request.
                _log.exception("change listener %r failed on %s %s", listener, kind, issue.key)
