"""The operator's options for a plugin's outbound HTTP, and the policy built from them.

`HttpOptions` and `CredentialOptions` validate what the operator wrote (pydantic, unknown keys
refused, errors naming the field); `build_policy` combines them with the manifest's allowlist
into the `HttpPolicy` the client enforces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..._units import parse_duration, parse_size
from ._allowlist import Allowlist, HostPattern
from ._guard import IPNetwork, NetworkPolicy
from ._secrets import REDACTOR, Secret, basic_token, resolve_secret, split_secret_ref

__all__ = [
    "CredentialBinding",
    "CredentialOptions",
    "HttpOptions",
    "HttpPolicy",
    "RateLimitOptions",
    "build_policy",
]

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP field name (RFC 9110 token)."""

HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
HOST_OWNED_HEADERS = HOP_BY_HOP_HEADERS | {"host", "content-length", "accept-encoding"}
"""Request headers the host sets itself (see `_client`): a credential bound to one of them
could never take effect."""


def _pattern(text: str) -> str:
    HostPattern.parse(text)
    return text


def _duration(text: str) -> str:
    if parse_duration(text) <= 0:
        raise ValueError(f'"{text}" must be longer than zero')
    return text


def _size(text: str) -> str:
    parse_size(text)
    return text


def _private_networks(value: bool | list[str]) -> bool | list[str]:
    # Checked here rather than per item: in the union, an item's error would come second to
    # "Input should be a valid boolean", which is not what the operator got wrong.
    if not isinstance(value, bool):
        for text in value:
            ip_network(text)  # strict: "10.0.0.1/8" is refused for its host bits, not widened
    return value


def _secret_ref(text: str) -> str:
    split_secret_ref(text)
    return text


HostPatternText = Annotated[str, AfterValidator(_pattern)]
DurationText = Annotated[str, AfterValidator(_duration)]
SizeText = Annotated[str, AfterValidator(_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitOptions(_Strict):
    """A token bucket: `requests_per_second` sustained, `burst` at once."""

    requests_per_second: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)


class HttpOptions(_Strict):
    """``plugins.<name>.http`` in the operator's config."""

    allowed_hosts: list[HostPatternText] | None = None
    """Narrows the manifest's allowlist (replaces it, for a manifest with `operator_hosts`);
    None leaves it as it is. IP literals listed here are reachable even when internal."""
    allow_private_networks: Annotated[bool | list[str], AfterValidator(_private_networks)] = False
    """True opens loopback, private, link-local and CGNAT ranges; a list opens those CIDRs."""
    max_redirects: int = Field(default=5, ge=0)
    timeout: DurationText = "30s"
    max_request_body: SizeText = "1MB"
    max_response_body: SizeText = "16MB"
    max_requests_per_call: int = Field(default=100, ge=1)
    rate_limit: RateLimitOptions = Field(default_factory=RateLimitOptions)


class CredentialOptions(_Strict):
    """One entry of ``plugins.<name>.credentials``: a secret the host adds for some hosts."""

    hosts: list[HostPatternText] = Field(min_length=1)
    scheme: Literal["basic", "bearer", "header"]
    username: str | None = None
    header: str | None = None
    secret: Annotated[str, AfterValidator(_secret_ref)]

    @model_validator(mode="after")
    def _check_scheme_fields(self) -> CredentialOptions:
        if self.scheme == "basic" and self.username is None:
            raise ValueError('scheme "basic" needs a username')
        if self.scheme != "basic" and self.username is not None:
            raise ValueError(f'username is only used with scheme "basic", not "{self.scheme}"')
        if self.scheme == "header":
            if self.header is None:
                raise ValueError('scheme "header" needs a header name')
            if not TOKEN.fullmatch(self.header):
                raise ValueError(f'"{self.header}" is not a valid header name')
            if self.header.lower() in HOST_OWNED_HEADERS:
                raise ValueError(f'header "{self.header}" is set by the host, not by credentials')
        elif self.header is not None:
            raise ValueError(f'header is only used with scheme "header", not "{self.scheme}"')
        return self


@dataclass(frozen=True)
class CredentialBinding:
    """A secret the host adds to requests to `hosts`, where the plugin cannot see it."""

    hosts: Allowlist
    scheme: Literal["basic", "bearer", "header"]
    username: str | None
    header_name: str | None
    secret: Secret

    def header(self) -> tuple[str, str]:
        """The (name, value) of the header this binding puts on a request."""
        # `CredentialOptions` guarantees the field each scheme needs is set.
        if self.scheme == "basic":
            assert self.username is not None
            return "Authorization", f"Basic {basic_token(self.username, self.secret)}"
        if self.scheme == "bearer":
            return "Authorization", f"Bearer {self.secret.reveal()}"
        assert self.header_name is not None
        return self.header_name, self.secret.reveal()


@dataclass(frozen=True)
class HttpPolicy:
    """Everything `OutboundHttp` enforces for one plugin, parsed and ready."""

    allowlist: Allowlist
    """What the plugin may reach: the manifest's list narrowed (or replaced) by the operator's."""
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    credentials: tuple[CredentialBinding, ...] = ()
    max_redirects: int = 5
    timeout_s: float = 30.0
    max_request_bytes: int = 1 << 20
    max_response_bytes: int = 16 << 20
    max_requests_per_call: int = 100
    requests_per_second: float = 10.0
    burst: int = 20
    manifest_allowlist: Allowlist | None = None
    """The manifest's own list (None: `allowlist`), to tell whose list refused a URL."""
    operator_allowlist: Allowlist | None = None
    """``plugins.<name>.http.allowed_hosts``; None when the operator gave none."""
    operator_hosts: bool = False
    """The manifest leaves the list to the operator (``security.operator_hosts``)."""


def build_policy(
    manifest_allowed_hosts: list[str],
    http: HttpOptions,
    credentials: list[CredentialOptions],
    *,
    operator_hosts: bool = False,
) -> HttpPolicy:
    """The policy for a plugin whose manifest allows `manifest_allowed_hosts` (and, with
    `operator_hosts`, whatever the operator lists).

    Raises `ValueError` for a malformed manifest pattern and `ConfigError` for a secret that
    cannot be read.
    """
    private = http.allow_private_networks
    cidrs: tuple[IPNetwork, ...] = ()
    if not isinstance(private, bool):
        cidrs = tuple(map(ip_network, private))
    allowlist = Allowlist.effective(
        manifest_allowed_hosts, http.allowed_hosts, operator_hosts=operator_hosts
    )
    # An IP literal the operator wrote into the allowlist is as explicit as a CIDR in
    # allow_private_networks, so "http://127.0.0.1:8080" alone reaches a local server. Only
    # the operator's list counts: a manifest cannot open an internal address for itself.
    named = allowlist.ip_literals() if http.allowed_hosts is not None else frozenset()
    return HttpPolicy(
        allowlist=allowlist,
        network=NetworkPolicy(
            allow_private=private is True, allowed_cidrs=cidrs, named_addresses=named
        ),
        credentials=tuple(_bind(options) for options in credentials),
        max_redirects=http.max_redirects,
        timeout_s=parse_duration(http.timeout),
        max_request_bytes=parse_size(http.max_request_body),
        max_response_bytes=parse_size(http.max_response_body),
        max_requests_per_call=http.max_requests_per_call,
        requests_per_second=http.rate_limit.requests_per_second,
        burst=http.rate_limit.burst,
        manifest_allowlist=Allowlist(manifest_allowed_hosts),
        operator_allowlist=None if http.allowed_hosts is None else Allowlist(http.allowed_hosts),
        operator_hosts=operator_hosts,
    )


def _bind(options: CredentialOptions) -> CredentialBinding:
    secret = resolve_secret(options.secret)
    if options.username is not None:
        REDACTOR.register(secret, username=options.username)
    return CredentialBinding(
        hosts=Allowlist(options.hosts),
        scheme=options.scheme,
        username=options.username,
        header_name=options.header,
        secret=secret,
    )
