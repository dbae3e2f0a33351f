"""The seams test instruments plug into: request hooks around every REST call, change listeners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from starlette.responses import Response

from ._model import ApiCall, IssueEvent

__all__ = ["ChangeListener", "DropConnection", "RequestHook"]

ChangeListener = Callable[[IssueEvent], None]
"""Called by the store on every create, update and delete, while it holds its write lock.

Listeners must be quick and must not call back into the store (queue the work instead).
"""


class RequestHook(Protocol):
    """Runs around the handler of every `/rest/...` request (not around `/_emulator/`).

    `before` may sleep (latency) or return a response that is sent instead of running the
    handler (429, 503). `after` sees the handler's response; it may return a different one,
    or raise `DropConnection` to close the connection without answering (after a write has
    been applied, like a proxy timing out). Returning `None` keeps the response as it is.
    """

    async def before(self, call: ApiCall) -> Response | None: ...

    async def after(self, call: ApiCall, response: Response) -> Response | None: ...


class DropConnection(Exception):
    """Raised by a request hook: close the client's connection without sending a response."""
