"""Running JQL over the store: matching issues in order, cached until the next write."""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ._catalog import Catalog
from ._jql import JqlError, Query, SortKey, compile_jql
from ._model import Issue, User
from ._store import IssueStore

__all__ = ["Page", "Searcher"]

_CACHED_QUERIES = 64
_INVALID_TOKEN = "The provided next page token is invalid or expired."


@dataclass(frozen=True)
class _Result:
    generation: int
    issues: list[Issue]
    keys: list[SortKey]


@dataclass(frozen=True)
class Page:
    issues: list[Issue]
    next_token: str | None


class Searcher:
    """Answers `/search/jql`: compiles JQL, filters and sorts once per store generation.

    A page token holds the sort key of the last issue returned (and a fingerprint of the
    query), not an offset: the next page starts after that key, so issues that change between
    pages neither shift the others nor repeat (an issue whose sort key moved past the token
    shows up again, where it now sorts, as on Jira).
    """

    def __init__(self, store: IssueStore, catalog: Catalog, users: Sequence[User]):
        self._store = store
        self._catalog = catalog
        self._users = users
        self._cache: dict[tuple[str, str], _Result] = {}
        self._lock = threading.Lock()

    def page(
        self,
        jql: str,
        user: User,
        *,
        token: str | None,
        limit: int,
        reconcile: frozenset[int] = frozenset(),
    ) -> Page:
        query = compile_jql(
            jql,
            catalog=self._catalog,
            user=user,
            users=self._users,
            now=self._store.clock.now(),
            issue_exists=lambda id_or_key: self._store.get(id_or_key) is not None,
        )
        if not query.bounded:
            raise JqlError(
                "Unbounded JQL queries are not allowed here. Please add a search restriction "
                "to your query."
            )
        fingerprint = hashlib.sha256(f"{jql}\0{user.account_id}".encode()).hexdigest()[:12]
        result = self._result(jql, user, query, reconcile)
        start = 0
        if token:
            start = bisect.bisect_right(result.keys, _decode_token(token, fingerprint))
        chosen = result.issues[start : start + limit]
        more = start + limit < len(result.issues)
        next_token = _encode_token(fingerprint, result.keys[start + limit - 1]) if more else None
        return Page(issues=chosen, next_token=next_token)

    def _result(self, jql: str, user: User, query: Query, reconcile: frozenset[int]) -> _Result:
        cache_key = (jql, user.account_id)
        generation = self._store.generation
        cached = self._cache.get(cache_key)
        if cached is not None and cached.generation == generation and not query.time_dependent:
            return cached
        view, cacheable = self._store.searchable(reconcile)
        matching = sorted(
            ((query.sort_key(issue), issue) for issue in view if query.matches(issue)),
            key=lambda pair: pair[0],
        )
        result = _Result(
            generation=generation,
            issues=[issue for _, issue in matching],
            keys=[key for key, _ in matching],
        )
        if cacheable and not query.time_dependent and not reconcile:
            with self._lock:
                if len(self._cache) >= _CACHED_QUERIES:
                    self._cache.clear()
                self._cache[cache_key] = result
        return result


def _encode_token(fingerprint: str, key: SortKey) -> str:
    raw = json.dumps([fingerprint, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(token: str, fingerprint: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        owner, key = json.loads(raw)
        if owner != fingerprint or not isinstance(key, list):
            raise ValueError
        if not all(
            isinstance(part, list) and all(type(x) in (int, float) for x in part) for part in key
        ):
            raise ValueError
        return tuple(tuple(part) for part in key)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise JqlError(_INVALID_TOKEN) from None
