"""`/search/jql` (GET and POST), and the removed `/search` that tells clients to move."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ._api import Api, routes_for
from ._errors import JiraError, raw_json_response
from ._jql import JqlError
from ._render import select_fields

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["routes"]

DEFAULT_MAX_RESULTS = 50
# Jira returns up to 5000 ids per page, but far fewer issues with fields.
MAX_IDS_PER_PAGE = 5000
MAX_ISSUES_PER_PAGE = 100
_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at "
    "https://developer.atlassian.com/changelog/#CHANGE-2046"
)
# SearchAndReconcileRequestBean: property -> the JSON type it must have
_BODY_TYPES: dict[str, tuple[type, ...]] = {
    "jql": (str,),
    "nextPageToken": (str,),
    "maxResults": (int,),
    "fields": (list,),
    "expand": (str,),
    "properties": (list,),
    "fieldsByKeys": (bool,),
    "failFast": (bool,),
    "reconcileIssues": (list,),
}


async def search_get(api: Api, request: Request) -> Response:
    params = request.query_params
    max_results = params.get("maxResults")
    if max_results is not None and not max_results.lstrip("-").isdigit():
        raise JiraError(400, [f"The value '{max_results}' is not a valid number for maxResults."])
    reconcile = [r for item in params.getlist("reconcileIssues") for r in item.split(",") if r]
    if not all(r.isdigit() for r in reconcile):
        raise JiraError(400, ["reconcileIssues must be a list of issue ids."])
    return _search(
        api,
        request,
        jql=params.get("jql", ""),
        token=params.get("nextPageToken"),
        max_results=int(max_results) if max_results is not None else DEFAULT_MAX_RESULTS,
        fields=params.getlist("fields"),
        expand=params.get("expand", ""),
        reconcile=[int(r) for r in reconcile],
    )


async def search_post(api: Api, request: Request) -> Response:
    body = api.json_object(request)
    for name, value in body.items():
        wanted = _BODY_TYPES.get(name)
        if wanted is None:
            raise JiraError(
                400,
                [
                    f'Unrecognized field "{name}" (class SearchAndReconcileRequestBean), '
                    "not marked as ignorable"
                ],
            )
        if value is not None and (
            not isinstance(value, wanted) or (wanted == (int,) and isinstance(value, bool))
        ):
            raise JiraError(400, [f"Invalid value for '{name}': {json.dumps(value)[:100]}"])
    fields = body.get("fields") or []
    reconcile = body.get("reconcileIssues") or []
    if not all(isinstance(f, str) for f in fields):
        raise JiraError(400, ["Invalid value for 'fields': expected a list of strings"])
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in reconcile):
        raise JiraError(400, ["Invalid value for 'reconcileIssues': expected a list of issue ids"])
    max_results = body.get("maxResults")
    return _search(
        api,
        request,
        jql=body.get("jql") or "",
        token=body.get("nextPageToken"),
        max_results=DEFAULT_MAX_RESULTS if max_results is None else max_results,
        fields=fields,
        expand=body.get("expand") or "",
        reconcile=reconcile,
    )


def _search(
    api: Api,
    request: Request,
    *,
    jql: str,
    token: str | None,
    max_results: int,
    fields: Sequence[str],
    expand: str,
    reconcile: Sequence[int],
) -> Response:
    if max_results < 1:
        raise JiraError(400, ["The maxResults parameter must be greater than 0."])
    if len(reconcile) > 50:
        raise JiraError(400, ["reconcileIssues accepts at most 50 issue ids."])
    selected = select_fields(fields, default="id")
    requested = {n.strip() for item in fields for n in item.split(",")}
    changelog = "changelog" in {e.strip() for e in expand.split(",")}
    envelope = bool(selected) or changelog or "key" in requested
    limit = min(max_results, MAX_ISSUES_PER_PAGE if envelope else MAX_IDS_PER_PAGE)
    emulator = api.emulator
    try:
        page = emulator.searcher.page(
            jql,
            api.user(request),
            token=token,
            limit=limit,
            reconcile=frozenset(reconcile),
        )
    except JqlError as error:
        raise JiraError(400, [str(error)]) from None
    base = api.base_url(request)
    renderer = emulator.renderer
    parts: list[str]
    if envelope:
        parts = [
            renderer.issue_json(
                issue, base_url=base, api=api.version, fields=selected, changelog=changelog
            )
            for issue in page.issues
        ]
    else:
        parts = [f'{{"id":"{issue.id}"}}' for issue in page.issues]
    tail: dict[str, Any] = {"isLast": page.next_token is None}
    if page.next_token is not None:
        tail = {"nextPageToken": page.next_token, **tail}
    text = '{"issues":[' + ",".join(parts) + "]," + json.dumps(tail, separators=(",", ":"))[1:]
    return raw_json_response(text)


async def removed_search(api: Api, request: Request) -> Response:
    raise JiraError(410, [_REMOVED])


def routes(emulator: JiraEmulator) -> list[BaseRoute]:
    return routes_for(
        emulator,
        [
            ("GET", "/search/jql", search_get),
            ("POST", "/search/jql", search_post),
            ("GET", "/search", removed_search),
            ("POST", "/search", removed_search),
        ],
    )
