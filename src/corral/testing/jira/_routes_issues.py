"""Issues: create (one and bulk), read, edit, delete, transitions and changelog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ._api import ISSUE_NOT_FOUND, Api, routes_for
from ._edits import check_update_details, creation_values, edit_values
from ._errors import JiraError, json_response, raw_json_response
from ._fields import FIELDS_BY_ID
from ._model import Issue, User
from ._render import select_fields
from ._workflow import Transition

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["routes"]

MAX_BULK = 50
MAX_CHANGELOG_PAGE = 100


def _created(api: Api, request: Request, issue: Issue) -> dict[str, str]:
    api.call(request).issue_keys.append(issue.key)
    return {
        "id": str(issue.id),
        "key": issue.key,
        "self": f"{api.base_url(request)}/rest/api/{api.version}/issue/{issue.id}",
    }


def _create(api: Api, request: Request, body: Any, user: User) -> Issue:
    emulator = api.emulator
    ctx = emulator.renderer.context(api.base_url(request), api.version)
    values = creation_values(body, ctx, user, emulator.catalog.workflow.initial.id)
    transition = _requested_transition(body, required=False)
    with emulator.store.lock:
        # One lock around both writes: nobody sees the issue between create and transition.
        issue = emulator.store.create(values, user)
        if transition is not None:
            issue = _transition(api, issue, transition, {}, user)
    return issue


async def create_issue(api: Api, request: Request) -> Response:
    body = api.json_object(request)
    issue = _create(api, request, body, api.user(request))
    return json_response(_created(api, request, issue), 201)


async def create_issues(api: Api, request: Request) -> Response:
    body = api.json_object(request)
    updates = body.get("issueUpdates")
    if not isinstance(updates, list):
        raise JiraError(400, ["Specify the issues to create in 'issueUpdates'."])
    if not all(isinstance(update, dict) for update in updates):
        raise JiraError(400, ["Cannot deserialize 'issueUpdates': expected a list of objects."])
    if len(updates) > MAX_BULK:
        raise JiraError(
            400, [f"You can create at most {MAX_BULK} issues in one request; got {len(updates)}."]
        )
    user = api.user(request)
    created: list[dict[str, str]] = []
    failed: list[dict[str, Any]] = []
    for number, update in enumerate(updates):
        try:
            created.append(_created(api, request, _create(api, request, update, user)))
        except JiraError as error:
            failed.append(
                {
                    "status": error.status,
                    "failedElementNumber": number,
                    "elementErrors": {"errorMessages": error.messages, "errors": error.errors},
                }
            )
    # Jira answers 201 if anything was created, with the failures listed beside the successes.
    return json_response(
        {"issues": created, "errors": failed}, 201 if created or not failed else 400
    )


async def get_issue(api: Api, request: Request) -> Response:
    issue = api.issue(request)
    params = request.query_params
    fields = select_fields(params.getlist("fields"), default="*all")
    expand = {e.strip() for e in params.get("expand", "").split(",")}
    renderer = api.emulator.renderer
    base = api.base_url(request)
    if not expand & {"names", "transitions"}:
        return raw_json_response(
            renderer.issue_json(
                issue,
                base_url=base,
                api=api.version,
                fields=fields,
                changelog="changelog" in expand,
            )
        )
    body = renderer.issue_dict(
        issue, base_url=base, api=api.version, fields=fields, changelog="changelog" in expand
    )
    if "names" in expand:
        body["names"] = {name: FIELDS_BY_ID[name].name for name in fields}
    if "transitions" in expand:
        body["transitions"] = [
            _transition_json(api, base, t)
            for t in api.emulator.catalog.workflow.transitions_from(issue.values["status"])
        ]
    return json_response(body)


def _apply(api: Api, request: Request, *, transition: bool) -> Issue:
    """Apply the body's edits (and, for a transition, the move) to the issue as it is now.

    Read, check and write happen under the store lock; there is no version check, so the
    last write wins, as on Jira.
    """
    issue = api.issue(request)
    body = check_update_details(api.json_object(request))
    transition_id = _requested_transition(body, required=True) if transition else None
    emulator = api.emulator
    ctx = emulator.renderer.context(api.base_url(request), api.version)
    with emulator.store.lock:
        current = emulator.store.get(str(issue.id))
        if current is None:
            raise JiraError(404, [ISSUE_NOT_FOUND])
        user = api.user(request)
        now = emulator.clock.now()

        def new_comment(adf: Any) -> dict[str, Any]:
            comment_id = emulator.store.allocate_comment_id()
            return {
                "id": str(comment_id),
                "author": user.account_id,
                "body": adf,
                "created": now.isoformat(),
            }

        changes = edit_values(body, ctx, current.values, new_comment=new_comment)
        if transition_id is not None:
            return _transition(api, current, transition_id, changes, user)
        return emulator.store.update(current, changes, user)


async def edit_issue(api: Api, request: Request) -> Response:
    updated = _apply(api, request, transition=False)
    emulator = api.emulator
    if request.query_params.get("returnIssue", "").lower() == "true":
        return raw_json_response(
            emulator.renderer.issue_json(
                updated,
                base_url=api.base_url(request),
                api=api.version,
                fields=select_fields((), default="*all"),
            )
        )
    return Response(status_code=204)


async def delete_issue(api: Api, request: Request) -> Response:
    issue = api.issue(request)
    try:
        api.emulator.store.delete(issue, api.user(request))
    except KeyError:
        raise JiraError(
            404, ["Issue does not exist or you do not have permission to see it."]
        ) from None
    return Response(status_code=204)


def _transition_json(api: Api, base: str, transition: Transition) -> dict[str, Any]:
    return {
        "id": transition.id,
        "name": transition.name,
        "to": api.emulator.catalog.status_json(transition.to, base, api.version),
        "hasScreen": False,
        "isGlobal": False,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }


async def get_transitions(api: Api, request: Request) -> Response:
    issue = api.issue(request)
    base = api.base_url(request)
    wanted = request.query_params.get("transitionId")
    available = api.emulator.catalog.workflow.transitions_from(issue.values["status"])
    return json_response(
        {
            "expand": "transitions",
            "transitions": [
                _transition_json(api, base, t) for t in available if wanted in (None, t.id)
            ],
        }
    )


def _requested_transition(body: Mapping[str, Any], *, required: bool) -> str | None:
    transition = body.get("transition")
    if transition is None:
        if required:
            raise JiraError(400, ["Missing 'transition' identifier"])
        return None
    if not isinstance(transition, dict) or not isinstance(transition.get("id"), str | int):
        raise JiraError(400, ["Missing 'transition' identifier"])
    return str(transition["id"])


def _transition(
    api: Api, issue: Issue, transition_id: str, changes: dict[str, Any], user: User
) -> Issue:
    """Move `issue` along transition `transition_id`, with `changes` in the same history."""
    workflow = api.emulator.catalog.workflow
    available = {t.id: t for t in workflow.transitions_from(issue.values["status"])}
    chosen = available.get(transition_id)
    if chosen is None:
        raise JiraError(400, [f"Transition id '{transition_id}' is not valid for this issue."])
    now = api.emulator.clock.now()
    done = chosen.to.category == "done"
    moved = {
        **changes,
        "status": chosen.to.id,
        # Entering a done status resolves the issue; leaving one clears the resolution.
        "resolution": "10000" if done else None,
        "resolutiondate": (issue.values.get("resolutiondate") or now) if done else None,
    }
    return api.emulator.store.update(issue, moved, user)


async def do_transition(api: Api, request: Request) -> Response:
    _apply(api, request, transition=True)
    return Response(status_code=204)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise JiraError(400, [f"The value '{raw}' is not a valid number for {name}."])
    return int(raw)


async def get_changelog(api: Api, request: Request) -> Response:
    issue = api.issue(request)
    start = _int_param(request, "startAt", 0)
    limit = min(_int_param(request, "maxResults", MAX_CHANGELOG_PAGE), MAX_CHANGELOG_PAGE)
    histories = api.emulator.store.histories(issue.id)
    chosen = histories[start : start + limit]
    base = api.base_url(request)
    ctx = api.emulator.renderer.context(base, api.version)
    here = f"{base}/rest/api/{api.version}/issue/{issue.key}/changelog"
    body: dict[str, Any] = {
        "self": f"{here}?startAt={start}&maxResults={limit}",
        "maxResults": limit,
        "startAt": start,
        "total": len(histories),
        "isLast": start + limit >= len(histories),
        "values": [api.emulator.renderer.history_dict(h, ctx) for h in chosen],
    }
    if not body["isLast"]:
        body["nextPage"] = f"{here}?startAt={start + limit}&maxResults={limit}"
    return json_response(body)


def routes(emulator: JiraEmulator) -> list[BaseRoute]:
    return routes_for(
        emulator,
        [
            ("POST", "/issue", create_issue),
            ("POST", "/issue/bulk", create_issues),
            ("GET", "/issue/{issueIdOrKey}", get_issue),
            ("PUT", "/issue/{issueIdOrKey}", edit_issue),
            ("DELETE", "/issue/{issueIdOrKey}", delete_issue),
            ("GET", "/issue/{issueIdOrKey}/transitions", get_transitions),
            ("POST", "/issue/{issueIdOrKey}/transitions", do_transition),
            ("GET", "/issue/{issueIdOrKey}/changelog", get_changelog),
        ],
    )
