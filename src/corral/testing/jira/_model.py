"""The emulator's records: users, issues, changelog entries, and what hooks and listeners see."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "ApiCall",
    "ChangeItem",
    "History",
    "Issue",
    "IssueEvent",
    "User",
]


@dataclass(frozen=True)
class User:
    """A Jira account that can call the API: Basic `email:api_token`, or `Bearer api_token`."""

    email: str
    api_token: str
    account_id: str
    display_name: str
    time_zone: str = "UTC"

    def basic_auth(self) -> tuple[str, str]:
        """`(email, api_token)`, as httpx's `auth=` takes it."""
        return (self.email, self.api_token)

    def authorization(self) -> str:
        """The value of an `Authorization: Basic ...` header for this user."""
        raw = f"{self.email}:{self.api_token}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Issue:
    """One version of an issue. Never mutated: every write stores a new `Issue`.

    `values` maps field ids to the stored form of their value (names for status, priority and
    issue type; account ids for users; ADF documents for rich text; `datetime` for timestamps;
    tuples for labels). `version` grows by one on every write; rendered JSON is cached per
    version.
    """

    id: int
    key: str
    version: int
    values: Mapping[str, Any]

    @property
    def number(self) -> int:
        return int(self.key.rsplit("-", 1)[1])


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One changed field of a changelog entry, in Jira's changelog item shape."""

    field: str
    fieldtype: str
    field_id: str
    from_: str | None
    from_string: str | None
    to: str | None
    to_string: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "fieldtype": self.fieldtype,
            "fieldId": self.field_id,
            "from": self.from_,
            "fromString": self.from_string,
            "to": self.to,
            "toString": self.to_string,
        }


@dataclass(frozen=True, slots=True)
class History:
    """One changelog entry: who changed which fields of an issue, when."""

    id: int
    issue_id: int
    author: str  # account id
    created: datetime
    items: tuple[ChangeItem, ...]


@dataclass(frozen=True)
class IssueEvent:
    """What change listeners receive, once per create, update or delete.

    `issue` is the version after the write (for `deleted`, the last version before it).
    `history` is the changelog entry the write recorded (`None` for creates and deletes).
    `seq` grows by one per write across the whole store; `timestamp` is the emulator clock's
    time of the write, which is also the issue's new `updated`.
    """

    kind: Literal["created", "updated", "deleted"]
    issue: Issue
    history: History | None
    user: User
    timestamp: datetime
    seq: int


@dataclass
class ApiCall:
    """One request to the REST API, as request hooks see it.

    `user` is the authenticated caller, or `None` when the credentials were missing or wrong
    (the request is answered 401 after the `before` hooks ran). `is_write` is true for requests
    that change state (`POST /search/jql` is a read). `issue_keys` holds the issue id or key
    named in the path; the handler adds the keys of issues it created, so `after` hooks know
    which issues a write touched. `status` is set once the handler answered.
    """

    method: str
    path: str
    query: str
    body: bytes
    user: User | None
    is_write: bool
    received_at: datetime
    issue_keys: list[str] = field(default_factory=list)
    status: int | None = None
