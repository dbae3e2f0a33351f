"""`ServeApp`: one server's parts, wired together, and the ASGI application over them.

The parts, each replaceable or extendable before `asgi()` is called:

- `caller`: every plugin call goes through it (metrics, guards such as the circuit breaker);
- `services`: background workers with ``start()`` and ``stop(timeout)``, started in order when
  the server starts and stopped in reverse once it has stopped taking requests (the reloader is
  the first);
- `routes`: management endpoints, behind the bearer token when one is set, and
  `public_prefixes`, paths that need none (webhooks authenticate themselves);
- `plugin_details`: functions adding fields to each plugin's entry in ``/plugins``;
- `config_listeners`: called with each new configuration the reloader applied.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .._units import parse_duration
from ..capabilities.http._secrets import Secret
from ..config import HostConfig
from ..host import PluginHost
from ._background import Background
from ._calls import Caller
from ._errors import http_error
from ._metrics import Metrics
from ._reloader import Reloader
from ._routes import management_routes

__all__ = ["ServeApp", "Service"]


class Service(Protocol):
    """A background worker of the server."""

    def start(self) -> None: ...

    def stop(self, timeout: float) -> None: ...


class ServeApp:
    """The server around one `PluginHost` (which the caller owns and closes)."""

    def __init__(
        self, host: PluginHost, *, config_path: Path | None = None, token: Secret | None = None
    ) -> None:
        options = host.config.serve
        self.host = host
        self.config_path = config_path
        self.grace_period = parse_duration(options.grace_period)
        self.metrics = Metrics()
        self.caller = Caller(host, self.metrics)
        self.config_listeners: list[Callable[[HostConfig], None]] = []
        self.reloader = Reloader(
            host,
            config_path,
            debounce=parse_duration(options.reload_debounce),
            on_config=self._config_applied,
        )
        self.services: list[Service] = [self.reloader]
        self.routes: list[BaseRoute] = management_routes(self)
        self.public_prefixes: list[str] = ["/healthz", "/readyz"]
        self.plugin_details: list[Callable[[str], dict[str, Any]]] = []
        self._token = token
        # Webhooks, event delivery, schedules and circuit breakers plug themselves in.
        self.background = Background(self)

    def asgi(self) -> ASGIApp:
        """The ASGI application; its lifespan starts and stops the services."""
        app = Starlette(routes=self.routes, lifespan=self._lifespan)
        if self._token is None:
            return app
        return _BearerToken(app, self._token, tuple(self.public_prefixes))

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.metrics.attach()
        started: list[Service] = []
        try:
            for service in self.services:
                await run_in_threadpool(service.start)
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await run_in_threadpool(service.stop, self.grace_period)
            self.metrics.detach()

    def _config_applied(self, config: HostConfig) -> None:
        for listener in self.config_listeners:
            listener(config)


class _BearerToken:
    """Refuses requests without ``Authorization: Bearer <token>``, except on public paths."""

    def __init__(self, app: ASGIApp, token: Secret, public_prefixes: tuple[str, ...]) -> None:
        self._app = app
        self._expected = f"Bearer {token.reveal()}".encode()
        self._public = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not str(scope["path"]).startswith(self._public):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                response = http_error(
                    401,
                    "unauthorized",
                    "this endpoint needs Authorization: Bearer <serve.token>",
                    {"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)
