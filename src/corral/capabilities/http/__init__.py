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
from ._policy import CredentialOptions, HttpOptions, HttpPolicy, build_policy
from ._secrets import MASK, basic_token, install_redaction

__all__ = ["HttpCapability"]

PERMISSION = "network.http.outbound"


@dataclass
class _HttpState:
    client: OutboundHttp
    max_requests_per_call: int
    secret_forms: tuple[bytes, ...]
    """Every form in which this plugin's credentials could come back in a response."""

    def scrub(self, data: bytes) -> bytes:
        for form in self.secret_forms:
            data = data.replace(form, _MASK)
        return data


_MASK = MASK.encode()


def _secret_forms(policy: HttpPolicy) -> tuple[bytes, ...]:
    forms: set[bytes] = set()
    for binding in policy.credentials:
        forms.add(binding.secret.reveal().encode())
        forms.add(binding.header()[1].encode())
        if binding.username is not None:
            forms.add(basic_token(binding.username, binding.secret).encode())
    # longest first, so a form that contains another is masked whole
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


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
        client = OutboundHttp(plugin.name, policy, plugin.services.audit)
        return _HttpState(client, policy.max_requests_per_call, _secret_forms(policy))

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
            # A server that echoes requests back (or a hostile redirect target) must not hand
            # the plugin the credentials the host added.
            headers = [
                (name, state.scrub(value.encode()).decode("utf-8", "replace"))
                for name, value in response.headers
            ]
            return record(status=response.status, headers=headers, body=state.scrub(response.body))

        return [HostFunction("send", send, PERMISSION)]

    def close(self, state: _HttpState) -> None:
        state.client.close()
