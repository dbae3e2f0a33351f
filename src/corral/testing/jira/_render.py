"""Issues and changelog entries as JSON, with the `fields` selection and a per-version cache."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from ._catalog import Catalog
from ._fields import FIELDS, FIELDS_BY_ID, RenderContext, format_time, render_value, user_json
from ._model import History, Issue, User
from ._store import IssueStore

__all__ = ["ISSUE_EXPAND", "Renderer", "select_fields"]

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
_ALL = tuple(f.id for f in FIELDS)
_NAVIGABLE = tuple(f.id for f in FIELDS if f.navigable)
_CACHE_LIMIT = 100_000
# Kinds whose JSON depends only on the stored value (not on the issue): rendered once each.
_SHARED_KINDS = frozenset(
    {"user", "status", "priority", "issuetype", "project", "resolution", "option"}
)


# One encoder for all: json.dumps with options builds a new encoder on every call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def select_fields(requested: Iterable[str], *, default: str) -> tuple[str, ...]:
    """The field ids a `fields` parameter asks for, in `GET /field` order.

    Accepts comma-separated lists, ``*all``, ``*navigable``, field ids and ``-field`` to leave
    one out (alone, exclusions start from ``*navigable``). Unknown names are ignored, as Jira
    does. ``id`` alone selects no fields.
    """
    names = [n.strip() for item in requested for n in item.split(",") if n.strip()] or [default]
    include: set[str] = set()
    exclude: set[str] = set()
    positive = False
    for name in names:
        if name.startswith("-"):
            exclude.add(name[1:])
            continue
        positive = True
        if name == "*all":
            include.update(_ALL)
        elif name == "*navigable":
            include.update(_NAVIGABLE)
        else:
            include.add(name)
    if not positive:
        include.update(_NAVIGABLE)
    return tuple(f for f in _ALL if f in include and f not in exclude)


class Renderer:
    """Renders issues for one emulator; the JSON text of each issue version is cached."""

    def __init__(self, catalog: Catalog, users: Sequence[User], store: IssueStore):
        self._catalog = catalog
        self._users = {u.account_id: u for u in users}
        self._store = store
        self._contexts: dict[tuple[str, int], RenderContext] = {}
        self._cache: dict[tuple[Any, ...], str] = {}
        self._fragments: dict[tuple[Any, ...], str] = {}
        self._lock = threading.Lock()

    def context(self, base: str, api: int) -> RenderContext:
        ctx = self._contexts.get((base, api))
        if ctx is None:
            ctx = RenderContext(base=base, api=api, catalog=self._catalog, users=self._users)
            self._contexts[(base, api)] = ctx
        return ctx

    def issue_dict(
        self,
        issue: Issue,
        *,
        base_url: str,
        api: int,
        fields: tuple[str, ...] = _ALL,
        changelog: bool = False,
    ) -> dict[str, Any]:
        ctx = self.context(base_url, api)
        body: dict[str, Any] = {
            "expand": ISSUE_EXPAND,
            "id": str(issue.id),
            "self": f"{base_url}/rest/api/{api}/issue/{issue.id}",
            "key": issue.key,
            "fields": {
                name: render_value(FIELDS_BY_ID[name], issue.values.get(name), ctx, issue.id)
                for name in fields
            },
        }
        if changelog:
            histories = self._store.histories(issue.id)[::-1]  # newest first, as Jira lists them
            body["changelog"] = {
                "startAt": 0,
                "maxResults": len(histories),
                "total": len(histories),
                "histories": [self.history_dict(h, ctx) for h in histories],
            }
        return body

    def issue_json(
        self,
        issue: Issue,
        *,
        base_url: str,
        api: int,
        fields: tuple[str, ...],
        changelog: bool = False,
    ) -> str:
        """The JSON text of `issue_dict(...)`, cached per issue version and selection."""
        key = (issue.id, issue.version, base_url, api, fields, changelog)
        text = self._cache.get(key)
        if text is None:
            ctx = self.context(base_url, api)
            values = issue.values
            rendered = ",".join(
                f'"{name}":{self._fragment(name, values.get(name), ctx, issue.id)}'
                for name in fields
            )
            head = _dumps(
                {
                    "expand": ISSUE_EXPAND,
                    "id": str(issue.id),
                    "self": f"{base_url}/rest/api/{api}/issue/{issue.id}",
                    "key": issue.key,
                }
            )
            text = f'{head[:-1]},"fields":{{{rendered}}}'
            if changelog:
                full = self.issue_dict(issue, base_url=base_url, api=api, fields=(), changelog=True)
                text += ',"changelog":' + _dumps(full["changelog"])
            text += "}"
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()  # old versions pile up under heavy writing
                self._cache[key] = text
        return text

    def _fragment(self, name: str, value: Any, ctx: RenderContext, issue_id: int) -> str:
        # Statuses, users, priorities... repeat across issues: their JSON is made once.
        spec = FIELDS_BY_ID[name]
        if spec.kind not in _SHARED_KINDS:
            return _dumps(render_value(spec, value, ctx, issue_id))
        key = (spec.kind, value, ctx.base, ctx.api)
        fragment = self._fragments.get(key)
        if fragment is None:
            fragment = _dumps(render_value(spec, value, ctx, issue_id))
            self._fragments[key] = fragment
        return fragment

    def history_dict(self, history: History, ctx: RenderContext) -> dict[str, Any]:
        return {
            "id": str(history.id),
            "author": user_json(history.author, ctx),
            "created": format_time(history.created),
            "items": [item.to_json() for item in history.items],
        }
