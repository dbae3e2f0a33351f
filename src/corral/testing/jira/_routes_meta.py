"""Who am I and what exists: myself, serverInfo, field, project, issuetype, priority, status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ._api import Api, routes_for
from ._errors import JiraError, json_response
from ._fields import FIELDS, format_time, user_json

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["routes"]

_VERSION = "1001.0.0-SNAPSHOT"


async def myself(api: Api, request: Request) -> Response:
    user = api.user(request)
    ctx = api.emulator.renderer.context(api.base_url(request), api.version)
    body = user_json(user.account_id, ctx) | {
        "locale": "en_US",
        "groups": {"size": 0, "items": []},
        "applicationRoles": {"size": 0, "items": []},
        "expand": "groups,applicationRoles",
    }
    return json_response(body)


async def server_info(api: Api, request: Request) -> Response:
    base = api.base_url(request)
    return json_response(
        {
            "baseUrl": base,
            "displayUrl": base,
            "version": _VERSION,
            "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud",
            "buildNumber": 100289,
            "buildDate": "2025-12-01T00:00:00.000+0000",
            "serverTime": format_time(api.emulator.clock.now()),
            "scmInfo": "corral-jira-emulator",
            "serverTitle": "Jira",
            "serverTimeZone": "Etc/UTC",
        }
    )


async def fields(api: Api, request: Request) -> Response:
    return json_response([f.details_json() for f in FIELDS])


async def projects(api: Api, request: Request) -> Response:
    return json_response([api.emulator.catalog.project_json(api.base_url(request), api.version)])


async def project(api: Api, request: Request) -> Response:
    catalog = api.emulator.catalog
    wanted = request.path_params["projectIdOrKey"]
    if wanted.upper() != catalog.project_key and wanted != catalog.project_id:
        raise JiraError(404, [f"No project could be found with key '{wanted}'."])
    return json_response(catalog.project_json(api.base_url(request), api.version, full=True))


async def issue_types(api: Api, request: Request) -> Response:
    catalog = api.emulator.catalog
    base = api.base_url(request)
    return json_response(
        [catalog.issue_type_json(t, base, api.version) for t in catalog.issue_types]
    )


async def priorities(api: Api, request: Request) -> Response:
    catalog = api.emulator.catalog
    base = api.base_url(request)
    return json_response([catalog.priority_json(p, base, api.version) for p in catalog.priorities])


async def statuses(api: Api, request: Request) -> Response:
    catalog = api.emulator.catalog
    base = api.base_url(request)
    return json_response(
        [catalog.status_json(s, base, api.version) for s in catalog.workflow.statuses]
    )


def routes(emulator: JiraEmulator) -> list[BaseRoute]:
    return routes_for(
        emulator,
        [
            ("GET", "/myself", myself),
            ("GET", "/serverInfo", server_info),
            ("GET", "/field", fields),
            ("GET", "/project", projects),
            ("GET", "/project/{projectIdOrKey}", project),
            ("GET", "/issuetype", issue_types),
            ("GET", "/priority", priorities),
            ("GET", "/status", statuses),
        ],
    )
