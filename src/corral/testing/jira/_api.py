"""What every REST handler needs: the emulator, the API version, the caller, the body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._errors import JiraError
from ._model import ApiCall, Issue, User

if TYPE_CHECKING:
    from ._emulator import JiraEmulator

__all__ = ["API_VERSIONS", "ISSUE_NOT_FOUND", "Api", "Handler", "routes_for"]

API_VERSIONS = (2, 3)
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."

Handler = Callable[["Api", Request], Awaitable[Response]]


@dataclass(frozen=True)
class Api:
    """One API version of one emulator, handed to every handler."""

    emulator: JiraEmulator
    version: int

    @staticmethod
    def call(request: Request) -> ApiCall:
        """The request as the middleware saw it (caller, body)."""
        call: ApiCall = request.scope["state"]["jira_call"]
        return call

    def user(self, request: Request) -> User:
        user = self.call(request).user
        assert user is not None, "the middleware answers 401 before handlers run"
        return user

    @staticmethod
    def base_url(request: Request) -> str:
        """The site's base URL as the client reached it (``self`` links use it)."""
        # The root path counts: mounted under /jira, links must say /jira/rest/...
        url = request.url
        return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}".rstrip("/")

    def json_body(self, request: Request) -> Any:
        """The request body parsed as JSON; 400 in Jira's words if it is not JSON."""
        raw = self.call(request).body
        if not raw.strip():
            raise JiraError(400, ["No content to map due to end-of-input"])
        try:
            return json.loads(raw)
        except UnicodeDecodeError:
            raise JiraError(400, ["Invalid UTF-8 in the request body"]) from None
        except json.JSONDecodeError as exc:
            raise JiraError(
                400,
                [
                    f"Unexpected character: {exc.msg} at [Source: REDACTED; "
                    f"line: {exc.lineno}, column: {exc.colno}]"
                ],
            ) from None

    def json_object(self, request: Request) -> dict[str, Any]:
        body = self.json_body(request)
        if not isinstance(body, dict):
            raise JiraError(400, ["Cannot deserialize the request body: expected a JSON object"])
        return body

    def issue(self, request: Request) -> Issue:
        """The issue named by the path's ``issueIdOrKey``; 404 if there is none."""
        id_or_key = request.path_params["issueIdOrKey"]
        issue = self.emulator.store.get(id_or_key)
        if issue is None:
            raise JiraError(404, [ISSUE_NOT_FOUND])
        return issue


def routes_for(
    emulator: JiraEmulator, table: Sequence[tuple[str, str, Handler]]
) -> list[BaseRoute]:
    """`Route`s for each (method, path under /rest/api/N, handler) in both API versions."""
    return [
        Route(
            f"/rest/api/{version}{path}", partial(handler, Api(emulator, version)), methods=[method]
        )
        for version in API_VERSIONS
        for method, path, handler in table
    ]
