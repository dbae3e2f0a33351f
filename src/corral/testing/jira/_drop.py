"""Closing a client's connection without a word, for the drop-after-write fault.

ASGI has no way to abort a connection: an app that returns without answering gets a 500 from
uvicorn, and one that sends only the response head has, for a 204, sent the whole answer. So
the emulator's server runs uvicorn's h11 protocol with one addition: every HTTP request's scope
carries an extension, `DROP_EXTENSION`, that aborts that request's TCP connection. The client
sees the connection reset with no status line, exactly as when a proxy or a load balancer
gives up after the write was applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["DROP_EXTENSION", "DroppableH11Protocol", "drop_connection"]

DROP_EXTENSION = "corral.drop_connection"


class DroppableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose requests can abort their own connection."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.app = _with_drop(self.app, self._abort)

    def _abort(self) -> None:
        self.transport.abort()


def _with_drop(app: ASGIApp, abort: Callable[[], None]) -> Any:
    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("extensions", {})[DROP_EXTENSION] = abort
        await app(scope, receive, send)

    return run


async def drop_connection(scope: Scope, receive: Receive) -> bool:
    """Abort the connection of this request without answering; False if the server cannot.

    Returns once the server has seen the connection go, so it does not try to answer it.
    """
    abort = scope.get("extensions", {}).get(DROP_EXTENSION)
    if abort is None:
        return False
    abort()
    while (await receive())["type"] != "http.disconnect":
        pass
    return True
