"""The admin API under `/_emulator/`: what a test or a demo script changes at run time.

No authentication (it is a local test instrument) and no request hooks (faults never hit it).
Answers are JSON; errors use Jira's `{"errorMessages": [...], "errors": {}}` shape.

=======  ================================  ==================================================
method   path                              does
=======  ================================  ==================================================
POST     /_emulator/reset                  delete everything, then seed ``{"issues", "seed"}``
POST     /_emulator/seed                   add ``{"issues": N, "seed": S}`` issues
GET      /_emulator/faults                 ``{"spec": ...}`` of the faults in force
PUT      /_emulator/faults                 set ``{"spec": "429:0.1,latency:50ms"}``
GET      /_emulator/clock                  ``{"now": ...}``
POST     /_emulator/clock/advance          move the clock: ``{"by": "1h"}`` or ``{"seconds": 60}``
GET      /_emulator/requests               the request log, oldest first
DELETE   /_emulator/requests               clear it
GET      /_emulator/webhooks               targets and delivery options
POST     /_emulator/webhooks               add ``{"url": ..., "secret": ...}``
DELETE   /_emulator/webhooks               remove ``{"url": ...}``
PUT      /_emulator/webhooks/options       retries of failed deliveries: ``{"retries": 3,
                                           "backoff": "100ms"}``
GET      /_emulator/webhooks/deliveries    every delivery attempt so far
=======  ================================  ==================================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._faults import Faults, FaultSpecError, format_duration, parse_duration
from ._requestlog import RequestLog, call_to_json
from ._webhooks import Webhooks

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["ADMIN_PREFIX", "admin_routes"]

ADMIN_PREFIX = "/_emulator"

Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    pass


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errorMessages": [message], "errors": {}}, status)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    return body


def _field(
    body: dict[str, Any], name: str, kind: type[int] | type[str], default: Any = None
) -> Any:
    value = body.get(name, default)
    # bool is an int in Python, but `{"issues": true}` is not a count
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise _BadRequest(f"field {name!r} must be {'a number' if kind is int else 'a string'}")
    return value


def _guarded(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except (_BadRequest, FaultSpecError, ValueError) as exc:
            return _error(400, str(exc))

    return run


def admin_routes(
    emulator: JiraEmulator, *, faults: Faults, requests: RequestLog, webhooks: Webhooks
) -> list[Route]:
    """The `/_emulator/` routes controlling `emulator` and its instruments."""

    async def reset(request: Request) -> Response:
        body = await _json_body(request)
        issues = _field(body, "issues", int, 0)
        seed = _field(body, "seed", int, 0)
        if issues < 0:
            raise _BadRequest("field 'issues' must be 0 or more")
        emulator.reset(issues=issues, seed=seed)
        return Response(status_code=204)

    async def seed(request: Request) -> Response:
        body = await _json_body(request)
        issues = _field(body, "issues", int)
        if issues is None or issues < 1:
            raise _BadRequest("field 'issues' (how many issues to add, 1 or more) is required")
        emulator.seed(issues, seed=_field(body, "seed", int, 0))
        return Response(status_code=204)

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"spec": str(faults.plan)})

    async def set_faults(request: Request) -> Response:
        spec = _field(await _json_body(request), "spec", str)
        if spec is None:
            raise _BadRequest('field \'spec\' is required, e.g. {"spec": "429:0.1"}')
        return JSONResponse({"spec": str(faults.set(spec))})

    async def get_clock(request: Request) -> Response:
        return JSONResponse({"now": emulator.clock.now().isoformat()})

    async def advance_clock(request: Request) -> Response:
        body = await _json_body(request)
        by, seconds = _field(body, "by", str), body.get("seconds")
        if (by is None) == (seconds is None):
            raise _BadRequest('give exactly one of "by" (e.g. "1h") and "seconds"')
        if by is not None:
            step = parse_duration(by)
        elif isinstance(seconds, int | float) and not isinstance(seconds, bool):
            step = timedelta(seconds=seconds)
        else:
            raise _BadRequest("field 'seconds' must be a number")
        return JSONResponse({"now": emulator.clock.advance(step).isoformat()})

    async def list_requests(request: Request) -> Response:
        return JSONResponse({"requests": [call_to_json(c) for c in requests.calls()]})

    async def clear_requests(request: Request) -> Response:
        requests.clear()
        return Response(status_code=204)

    def webhooks_json() -> dict[str, Any]:
        options = webhooks.options
        return {
            "webhooks": [{"url": t.url, "signed": t.secret is not None} for t in webhooks.targets],
            "options": {
                "retries": options.retries,
                "backoff": format_duration(options.backoff),
            },
        }

    async def list_webhooks(request: Request) -> Response:
        return JSONResponse(webhooks_json())

    async def add_webhook(request: Request) -> Response:
        body = await _json_body(request)
        url = _field(body, "url", str)
        if url is None:
            raise _BadRequest("field 'url' is required")
        webhooks.add(url, _field(body, "secret", str))
        return JSONResponse(webhooks_json(), 201)

    async def remove_webhook(request: Request) -> Response:
        url = _field(await _json_body(request), "url", str)
        if url is None or url not in {t.url for t in webhooks.targets}:
            return _error(404, f"no webhook with url {url!r}")
        webhooks.remove(url)
        return Response(status_code=204)

    async def set_webhook_options(request: Request) -> Response:
        body = await _json_body(request)
        changes: dict[str, Any] = {}
        if (backoff := _field(body, "backoff", str)) is not None:
            changes["backoff"] = parse_duration(backoff)
        if (retries := _field(body, "retries", int)) is not None:
            changes["retries"] = retries
        webhooks.configure(replace(webhooks.options, **changes))
        return JSONResponse(webhooks_json())

    async def list_deliveries(request: Request) -> Response:
        return JSONResponse({"deliveries": [asdict(d) for d in webhooks.deliveries()]})

    table: list[tuple[str, Handler, list[str]]] = [
        ("/reset", reset, ["POST"]),
        ("/seed", seed, ["POST"]),
        ("/faults", get_faults, ["GET"]),
        ("/faults", set_faults, ["PUT"]),
        ("/clock", get_clock, ["GET"]),
        ("/clock/advance", advance_clock, ["POST"]),
        ("/requests", list_requests, ["GET"]),
        ("/requests", clear_requests, ["DELETE"]),
        ("/webhooks", list_webhooks, ["GET"]),
        ("/webhooks", add_webhook, ["POST"]),
        ("/webhooks", remove_webhook, ["DELETE"]),
        ("/webhooks/options", set_webhook_options, ["PUT"]),
        ("/webhooks/deliveries", list_deliveries, ["GET"]),
    ]
    return [
        Route(ADMIN_PREFIX + path, _guarded(handler), methods=methods)
        for path, handler, methods in table
    ]
