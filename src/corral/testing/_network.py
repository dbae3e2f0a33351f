"""The network a test gives its plugin: made-up DNS answers, and a handler or an ASGI app that
answers the requests, each recorded as it would have gone on the wire."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import ExitStack
from typing import Any

import anyio.from_thread
import httpcore
import httpx

from .._errors import ConfigError
from ..capabilities.http import SimulatedNetwork

__all__ = ["PUBLIC_ADDRESS", "ASGIApp", "Handler", "TestNetwork"]

Handler = Callable[[httpx.Request], httpx.Response]
"""Answers one request; raise an `httpx.TransportError` (``ConnectError``, ``ReadTimeout``...)
to make the request fail as a network would."""
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

PUBLIC_ADDRESS = "11.22.33.44"
"""What every name resolves to unless the test says otherwise: an address the guard lets
through (it is public), which nothing is ever sent to (the test answers)."""


class TestNetwork(httpx.BaseTransport):
    """Answers a plugin's HTTP requests with the test's `handler` or ASGI `app` and keeps them.

    A handler raising anything but an `httpx.TransportError` is a bug in the test: the plugin
    sees ``unavailable``, and `raise_test_error` raises the exception itself after the call.
    An ASGI app gets HTTP requests only (no lifespan events, as with `httpx.ASGITransport`).
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        handler: Handler | None = None,
        app: ASGIApp | None = None,
        dns: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        if handler is not None and app is not None:
            raise ConfigError(
                "the test's network: give a handler (http=) or an ASGI app (asgi=), not both"
            )
        self.requests: list[httpx.Request] = []
        self._dns = {
            name.lower(): [a] if isinstance(a, str) else list(a) for name, a in (dns or {}).items()
        }
        self._handler = handler
        self._app = app
        self._stack = ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._lock = threading.Lock()
        self._test_error: BaseException | None = None

    def simulated(self) -> SimulatedNetwork:
        """This network as the host takes it."""
        return SimulatedNetwork(resolver=self.resolve, transport=self)

    def resolve(self, host: str, port: int) -> list[str]:
        """The test's answer for `host`: what `dns` says, else `PUBLIC_ADDRESS`."""
        return self._dns.get(host.lower(), [PUBLIC_ADDRESS])

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self._lock:
            self.requests.append(request)
        try:
            response = self._answer(request)
            # As from a socket: raw bytes, not yet read (the host reads and decodes them).
            raw = b"".join(response.stream)  # type: ignore[arg-type]
            return httpx.Response(response.status_code, headers=response.headers, stream=_Raw(raw))
        except httpx.TimeoutException as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except httpx.TransportError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        except Exception as exc:
            with self._lock:
                self._test_error = self._test_error or exc
            raise httpcore.ConnectError(f"the test's handler raised {exc!r}") from exc

    def raise_test_error(self) -> None:
        """Raise (once) what the test's handler raised during the last call, if anything."""
        with self._lock:
            error, self._test_error = self._test_error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop the ASGI app's event loop, if one was started."""
        self._stack.close()
        self._portal = None

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if self._handler is not None:
            return self._handler(request)
        if self._app is not None:
            return self._asgi_portal().call(self._asgi_exchange, request)
        raise httpx.ConnectError(f"the test gave the plugin no network to reach {request.url}")

    def _asgi_portal(self) -> anyio.from_thread.BlockingPortal:
        # One event loop, in a thread of its own, for the whole test: an app may keep state
        # bound to its loop between requests, and the plugin's call may run on any thread.
        with self._lock:
            if self._portal is None:
                self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
            return self._portal

    async def _asgi_exchange(self, request: httpx.Request) -> httpx.Response:
        transport = httpx.ASGITransport(app=self._app)  # type: ignore[arg-type]
        response = await transport.handle_async_request(request)
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
        return httpx.Response(response.status_code, headers=response.headers, stream=_Raw(raw))


class _Raw(httpx.SyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield self._body
