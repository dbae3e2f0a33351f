"""`http`: outbound HTTP through the host, allowlisted, SSRF-safe, with injected credentials.

The plugin names a URL; the host decides whether it may go there (manifest allowlist narrowed by
the operator, then the resolved address against the network policy), adds the credentials the
operator bound to that host, enforces size, time and rate limits, audits every hop and masks
the credentials in what comes back (`_client`, `_mask`). Bodies stay in the host, read and
written in chunks (`_bodies`). A request can also be started and finished later, so the plugin
works while it travels (`.._started`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from ..._errors import ConfigError, RateLimited
from ..._validation import validate_model
from .._base import CallContext, Capability, HostFunction, PluginContext
from .._started import Started, Workers
from .._wit import record
from ._bodies import Bodies
from ._client import HttpResponse, OutboundHttp, SimulatedNetwork
from ._policy import CredentialOptions, HttpOptions, HttpPolicy, build_policy
from ._secrets import install_redaction

__all__ = ["HttpCapability", "SimulatedNetwork"]

PERMISSION = "network.http.outbound"
MAX_STARTED = 4
"""Requests one call may have started and not yet finished."""
_BODIES = "http.bodies"
_STARTED = "http.started"


@dataclass
class _HttpState:
    client: OutboundHttp
    policy: HttpPolicy
    workers: Workers

    def bodies(self, call: CallContext) -> Bodies:
        """The bodies `call` holds (they go when it ends)."""
        bodies = call.state.get(_BODIES)
        if not isinstance(bodies, Bodies):
            bodies = call.state[_BODIES] = Bodies(self.policy.max_request_bytes)
        return bodies

    def started(self, call: CallContext) -> Started[HttpResponse]:
        """The requests `call` started and has not finished. One still running when the call
        ends runs to its end (by the call's deadline, as any request) and its answer is
        dropped: waiting would hold the call's answer for a request nobody reads."""
        started = call.state.get(_STARTED)
        if not isinstance(started, Started):
            started = call.state[_STARTED] = Started(self.workers, MAX_STARTED, "requests")
        return started


class HttpCapability(Capability):
    name = "http"
    permissions = (PERMISSION,)
    option_types: ClassVar[Mapping[str, Any]] = {
        "http": HttpOptions,
        "credentials": list[CredentialOptions],
    }

    def configure(self, plugin: PluginContext) -> _HttpState:
        where = f"plugins.{plugin.name}"
        options = validate_model(
            HttpOptions, plugin.options.get("http") or {}, f"{where}.http", ConfigError
        )
        raw_credentials = plugin.options.get("credentials") or []
        if not isinstance(raw_credentials, list):
            raise ConfigError(f"{where}.credentials: expected a list of credential bindings")
        credentials = [
            validate_model(CredentialOptions, item, f"{where}.credentials[{i}]", ConfigError)
            for i, item in enumerate(raw_credentials)
        ]
        try:
            security = plugin.manifest.security
            policy = build_policy(
                security.allowed_hosts,
                options,
                credentials,
                operator_hosts=security.operator_hosts,
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if policy.credentials:
            # httpcore logs response headers at debug level: an echoing server would put the
            # credentials there.
            for logger in ("corral", "httpx", "httpcore"):
                install_redaction(logger)
        client = OutboundHttp(
            plugin.name,
            policy,
            plugin.services.audit,
            network=plugin.services.network,
            origin=plugin.origin,
        )
        # Calls of one plugin may run at once (serve), each with up to MAX_STARTED requests.
        workers = Workers(f"corral-http-{plugin.name}", max_workers=2 * MAX_STARTED)
        return _HttpState(client, policy, workers)

    def host_functions(self, state: _HttpState) -> list[HostFunction]:
        limit = state.policy.max_requests_per_call

        def exchange(call: CallContext, request: Any) -> Callable[[], HttpResponse]:
            """What sending `request` will do, after the checks made before anything is sent."""
            if call.count("http.requests") > limit:
                raise RateLimited(f"more than {limit} HTTP requests in one call", retry_after_ms=0)
            bodies = state.bodies(call)
            body = b"" if request.body is None else bodies.take_request_body(request.body)
            bodies.ensure_room()
            timeout_ms = getattr(request, "timeout-ms")
            return partial(
                state.client.send,
                request.method,
                request.url,
                list(request.headers),
                body,
                timeout_s=None if timeout_ms is None else timeout_ms / 1000,
                deadline=call.deadline,
            )

        def answer(call: CallContext, response: HttpResponse) -> object:
            return record(
                status=response.status,
                headers=response.headers,
                body=state.bodies(call).add_response_body(response.body),
                body_size=len(response.body),
            )

        def send(call: CallContext, request: Any) -> object:
            return answer(call, exchange(call, request)())

        def start(call: CallContext, request: Any) -> int:
            return state.started(call).start(exchange(call, request))

        def finish(call: CallContext, handle: int) -> object:
            response = state.started(call).finish(handle, call.remaining(), "finish")
            return answer(call, response)

        def new_body(call: CallContext) -> int:
            return state.bodies(call).new_request_body()

        def write_body(call: CallContext, handle: int, chunk: bytes) -> None:
            state.bodies(call).write(handle, chunk)

        def read_body(call: CallContext, handle: int, max_bytes: int) -> bytes:
            return state.bodies(call).read(handle, max_bytes)

        def read_body_text(call: CallContext, handle: int, max_bytes: int) -> str:
            return state.bodies(call).read_text(handle, max_bytes)

        def drop_body(call: CallContext, handle: int) -> None:
            state.bodies(call).drop(handle)

        return [
            HostFunction("send", send, PERMISSION),
            HostFunction("start", start, PERMISSION),
            HostFunction("finish", finish, PERMISSION),
            HostFunction("new-body", new_body, PERMISSION),
            HostFunction("write-body", write_body, PERMISSION),
            HostFunction("read-body", read_body, PERMISSION),
            HostFunction("read-body-text", read_body_text, PERMISSION),
            HostFunction("drop-body", drop_body, PERMISSION),
        ]

    def close(self, state: _HttpState) -> None:
        state.workers.close()
        state.client.close()
