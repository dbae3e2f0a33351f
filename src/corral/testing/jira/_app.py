"""The ASGI app: routing, and the middleware that gives every REST request Jira's manners.

For each ``/rest/...`` request the middleware reads the body (413 past the size limit),
identifies the caller, runs the request hooks' `before`, answers 401 to strangers, runs the
handler, runs the hooks' `after`, and turns any exception into a 500 in Jira's shape: clients
never see a traceback.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _routes_issues, _routes_meta, _routes_search
from ._auth import authenticate
from ._drop import drop_connection
from ._errors import JiraError, error_response
from ._hooks import DropConnection
from ._model import ApiCall

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["build_app"]

_log = logging.getLogger(__name__)
_ISSUE_IN_PATH = re.compile(r"^/rest/api/\d+/issue/(?!bulk(?:/|$))([^/]+)")
_READ_ONLY_POSTS = re.compile(r"^/rest/api/\d+/search(?:/jql)?/?$")
_UNAUTHORIZED = "Client must be authenticated to access this resource."


class _RestMiddleware:
    def __init__(self, app: ASGIApp, emulator: JiraEmulator):
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        if scope["type"] != "http" or not path.startswith("/rest/"):
            await self.app(scope, receive, send)
            return
        emulator = self.emulator
        headers = dict(scope["headers"])
        method: str = scope["method"]
        user = authenticate(headers.get(b"authorization", b"").decode("latin-1"), emulator.users)
        body, too_large = await _read_body(receive, headers, emulator.max_body_bytes)
        issue = _ISSUE_IN_PATH.match(path)
        call = ApiCall(
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            body=body,
            user=user,
            is_write=method in ("POST", "PUT", "DELETE", "PATCH")
            and not _READ_ONLY_POSTS.match(path),
            received_at=emulator.clock.now(),
            issue_keys=[issue.group(1)] if issue else [],
        )
        response: Response | None = None
        try:
            response = await self._respond(scope, call, too_large)
            for hook in emulator.hooks:
                replaced = await hook.after(call, response)
                if replaced is not None:
                    response = replaced
        except DropConnection:
            # The write was applied; the client must not learn it. Under `serve` the
            # connection is reset before anything is sent. Mounted elsewhere, the best ASGI
            # allows: the head goes out, the body never does (a 204 is then complete).
            if await drop_connection(scope, receive) or response is None:
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            return
        except Exception:
            # A bug in a handler or hook: log it here, answer in Jira's shape, never a traceback.
            _log.exception("%s %s failed", call.method, call.path)
            response = error_response(500, ["Internal server error."])
        call.status = response.status_code
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, call: ApiCall, too_large: bool) -> Response:
        for hook in self.emulator.hooks:
            early = await hook.before(call)
            if early is not None:
                call.status = early.status_code
                return early
        if too_large:
            return error_response(
                413,
                [f"The request body is larger than {self.emulator.max_body_bytes} bytes."],
            )
        if call.user is None:
            return error_response(
                401, [_UNAUTHORIZED], headers={"WWW-Authenticate": 'Basic realm="protected-area"'}
            )
        scope.setdefault("state", {})["jira_call"] = call
        response = await _capture(self.app, scope, call.body)
        call.status = response.status_code
        return response


def _route_path(scope: Scope) -> str:
    """The path below where the app is mounted (ASGI's `path` includes the `root_path`)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(
    receive: Receive, headers: dict[bytes, bytes], limit: int
) -> tuple[bytes, bool]:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


async def _capture(app: ASGIApp, scope: Scope, body: bytes) -> Response:
    """Run `app` on an already-read body and collect its response."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    raw_headers: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []

    async def collect(message: Message) -> None:
        nonlocal status, raw_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            raw_headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, replay, collect)
    response = Response(b"".join(parts), status_code=status)
    response.raw_headers = raw_headers
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"No API endpoint matches {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = exc.detail
    return error_response(exc.status_code, [message], headers=exc.headers)


async def _jira_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, JiraError)
    return exc.response()


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, ["Internal server error."])


def build_app(emulator: JiraEmulator) -> Starlette:
    app = Starlette(
        routes=[
            *_routes_search.routes(emulator),
            *_routes_issues.routes(emulator),
            *_routes_meta.routes(emulator),
        ],
        exception_handlers={
            HTTPException: _http_error,
            JiraError: _jira_error,
            Exception: _server_error,
        },
    )
    app.add_middleware(_RestMiddleware, emulator=emulator)
    return app
