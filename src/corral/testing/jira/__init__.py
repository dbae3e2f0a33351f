"""A local Jira Cloud for tests, benchmarks and demos: `corral jira-emulator`.

It serves the parts of Jira Cloud's REST API (v3, and the v2 twins with wiki markup instead
of Atlassian Document Format) that a sync client uses, with Jira's shapes, status codes and
error bodies (``{"errorMessages": [...], "errors": {...}}``), over seeded deterministic data.

Three ways to use it::

    # 1. the command line
    corral jira-emulator --port 8765 --issues 10000 --seed 1

    # 2. in-process, over real HTTP on a free loopback port
    from corral.testing.jira import JiraEmulator, serve
    with serve(JiraEmulator(issues=100, seed=1)) as jira:
        httpx.get(jira.url + "/rest/api/3/myself", auth=jira.basic_auth(0))

    # 3. as an ASGI app another program mounts
    app = JiraEmulator().app

In pytest, ``pytest_plugins = ["corral.testing.jira.pytest_plugin"]`` provides the
`jira_emulator` fixture (an `EmulatorHandle` of a fresh emulator).

The pieces
----------
`JiraEmulator(*, project="DEMO", issues=0, seed=0, users=DEFAULT_USERS, state_file=None,
clock=None, workflow=DEFAULT_WORKFLOW, max_body_bytes=2 MiB, base_url=...)`
    ``.app`` (the Starlette app), ``.users``, ``.clock``, ``.store``, ``.catalog`` (project,
    issue types, priorities, statuses, fields), ``.seed(n, seed=)``, ``.reset(issues=, seed=)``,
    ``.render_issue(issue, api=3)`` (an issue as `GET /issue` returns it, for webhook payloads),
    ``.search_lag`` (a `timedelta`: how long writes stay invisible to `/search/jql`),
    ``.base_url``, ``.close()``.
`Clock`
    ``now()`` (aware UTC, millisecond precision) and ``advance(seconds | timedelta)``. Every
    timestamp the emulator writes and every relative JQL date reads it.
`User`
    ``email``, ``api_token``, ``account_id``, ``display_name``, ``time_zone`` (IANA name:
    `GET /myself` reports it and JQL date literals are read in it); ``basic_auth()``.
    Both ``Authorization: Basic base64(email:api_token)`` and ``Bearer api_token`` work.
`serve(emulator, host="127.0.0.1", port=0)`
    A context manager running uvicorn in a background thread; yields an `EmulatorHandle`
    with ``.url``, ``.users``, ``.basic_auth(user_or_index=0)`` and ``.emulator``.

Seams for test instruments (faults, webhooks, admin API, request log)
---------------------------------------------------------------------
``emulator.on_change(listener) -> unsubscribe``
    ``listener(IssueEvent)`` runs on every create/update/delete, inside the store's write
    lock, in write order. `IssueEvent` has ``kind`` ("created" | "updated" | "deleted"),
    ``issue`` (the `Issue` after the write; for deletes the last version), ``history`` (the
    changelog entry, a `History` whose ``items`` are `ChangeItem`s with ``to_json()``; `None`
    for creates and deletes), ``user``, ``timestamp`` and ``seq`` (store-wide write counter).
``emulator.add_hook(hook)`` / ``remove_hook(hook)``
    A `RequestHook` has ``async before(call) -> Response | None`` (sleep for latency, or
    return a 429/503 that is sent instead) and ``async after(call, response) -> Response |
    None`` (replace the response, or raise `DropConnection` to close the connection without
    answering, after the write was applied). `ApiCall` holds ``method``, ``path``, ``query``,
    ``body``, ``user`` (None if auth failed), ``is_write``, ``received_at``, ``issue_keys``
    (from the path; the handler adds created keys) and ``status`` (after). Hooks wrap every
    ``/rest/...`` request, including ones answered 401/404/413.
    If a hook's `before` answers, later hooks' `before` are skipped; every hook's `after`
    runs, in order.
``emulator.add_routes(routes)``
    Extra Starlette routes (the ``/_emulator/`` admin API); they bypass auth and hooks.

The instruments built on these seams are attributes of every emulator: ``.requests``
(`RequestLog`), ``.faults`` (`Faults`, from a spec like ``"429:0.1,latency:50ms"``),
``.webhooks`` (`Webhooks`), and the ``/_emulator/`` admin API over them.
"""

from ._clock import Clock
from ._emulator import DEFAULT_MAX_BODY_BYTES, JiraEmulator
from ._faults import Budget, FaultPlan, Faults, FaultSpecError
from ._hooks import ChangeListener, DropConnection, RequestHook
from ._model import ApiCall, ChangeItem, History, Issue, IssueEvent, User
from ._requestlog import RequestLog
from ._server import EmulatorHandle, serve
from ._users import DEFAULT_USERS, make_user, parse_user
from ._webhooks import Delivery, DeliveryOptions, Webhooks, WebhookTarget, signature
from ._workflow import DEFAULT_WORKFLOW, Status, Transition, Workflow

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_USERS",
    "DEFAULT_WORKFLOW",
    "ApiCall",
    "Budget",
    "ChangeItem",
    "ChangeListener",
    "Clock",
    "Delivery",
    "DeliveryOptions",
    "DropConnection",
    "EmulatorHandle",
    "FaultPlan",
    "FaultSpecError",
    "Faults",
    "History",
    "Issue",
    "IssueEvent",
    "JiraEmulator",
    "RequestHook",
    "RequestLog",
    "Status",
    "Transition",
    "User",
    "WebhookTarget",
    "Webhooks",
    "Workflow",
    "make_user",
    "parse_user",
    "serve",
    "signature",
]
