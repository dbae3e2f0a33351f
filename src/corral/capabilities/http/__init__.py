"""`http`: outbound HTTP through the host, allowlisted, SSRF-safe, with injected credentials.

The plugin names a URL; the host decides whether it may go there (manifest allowlist narrowed by
the operator, then the resolved address against the network policy), adds the credentials the
operator bound to that host, enforces size, time and rate limits, and audits every hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._errors import ConfigError, RateLimited
from ..._validation import validate_model
from .._base import CallContext, Capability, HostFunction, PluginContext
from .._wit import record
from ._client import OutboundHttp
from ._policy import CredentialOptions, HttpOptions, build_policy

__all__ = ["HttpCapability"]

PERMISSION = "network.http.outbound"


@dataclass
class _HttpState:
    client: OutboundHttp
    max_requests_per_call: int


class HttpCapability(Capability):
    name = "http"
    permissions = (PERMISSION,)
    option_keys = ("http", "credentials")

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
            policy = build_policy(plugin.manifest.security.allowed_hosts, options, credentials)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        client = OutboundHttp(plugin.name, policy, plugin.services.audit)
        return _HttpState(client, policy.max_requests_per_call)

    def host_functions(self, state: _HttpState) -> list[HostFunction]:
        def send(call: CallContext, request: Any) -> object:
            if call.count("http.requests") > state.max_requests_per_call:
                raise RateLimited(
                    f"more than {state.max_requests_per_call} HTTP requests in one call",
                    retry_after_ms=0,
                )
            timeout_ms = getattr(request, "timeout-ms")
            response = state.client.send(
                request.method,
                request.url,
                list(request.headers),
                request.body,
                timeout_s=None if timeout_ms is None else timeout_ms / 1000,
                deadline=call.deadline,
            )
            return record(status=response.status, headers=response.headers, body=response.body)

        return [HostFunction("send", send, PERMISSION)]

    def close(self, state: _HttpState) -> None:
        state.client.close()
