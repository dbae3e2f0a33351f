"""`OutboundHttp`: one plugin's outbound HTTP requests, checked, pinned, limited and audited.

Every request, and every redirect hop the host follows for it, goes through the same steps:
method and headers, URL shape, allowlist, body size, deadline, rate limit, DNS resolution and
address guard. Only then does the host connect, to an address it has just checked, adding the
credentials the operator bound to that host. Each step that refuses, and each hop that goes out,
writes one audit entry. What comes back to the plugin, response and error messages alike, has
those credentials masked (`SecretMask`).

The host, not the plugin, shapes the bytes a response comes back in, so that the credentials
it added can be found and masked in them: it negotiates the content coding and decodes the
body itself, and refuses byte ranges on requests that carry credentials. Every read and write
on the socket is bounded by what is left of the request's time.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ... import _observe
from ..._audit import AuditLog
from ..._errors import (
    HostApiError,
    HostTimeout,
    InvalidInput,
    PermissionDenied,
    RateLimited,
    Unavailable,
)
from ..._ratelimit import TokenBucket
from ..._settings_origin import SettingsOrigin
from ..._units import format_size
from ._allowlist import DEFAULT_PORTS, url_origin
from ._audit import AuditEntry, Decision, redact_url, write_entry
from ._guard import IPAddress, Resolver, resolve
from ._mask import SecretMask
from ._policy import HOP_BY_HOP_HEADERS, HOST_OWNED_HEADERS, TOKEN, HttpPolicy
from ._remedies import HttpRemedies
from ._secrets import REDACTOR, basic_token

__all__ = ["METHODS", "HttpResponse", "OutboundHttp", "PinnedTransport", "SimulatedNetwork"]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What a request loses when a redirect turns it into a body-less GET (as in the Fetch standard).
_BODY_HEADERS = frozenset(
    {"content-type", "content-encoding", "content-language", "content-location"}
)
# The plugin's own credentials stay with the origin it sent them to (as browsers and httpx do).
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie"})
# A slice of a response could hold a slice of the secret, which no mask recognises.
_RANGE_HEADERS = frozenset({"range", "if-range"})
# The content codings the host decodes (zlib window bits); it asks for these and no others.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPT_ENCODING = "gzip, deflate"
# Request bodies go out in pieces of this size: each socket write is then bounded in time,
# and nothing copies the whole body.
_WRITE_CHUNK = 64 << 10


@dataclass(frozen=True)
class HttpResponse:
    """What the plugin gets back; header names are lower case, hop-by-hop headers removed.
    The body is decoded: Content-Encoding (and the Content-Length of the encoded bytes) is
    removed when the host decoded one. `send` masks the credentials in all of it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class SimulatedNetwork:
    """A network that tests provide (`corral.testing`): names resolve through `resolver`, and
    requests go to `transport` instead of a socket.

    Only those two ends change. Every check between them still runs as in production: the
    allowlist and policy, the address guard on `resolver`'s answers, credentials, limits,
    redirects, masking and audit. Nothing in corral.yaml selects it: an embedding application
    has to construct one and hand it to `PluginHost(network=...)`.
    """

    resolver: Resolver
    transport: httpx.BaseTransport
    """Gets each hop as it would go on the wire (credentials added); never closed by the host."""


@dataclass(frozen=True)
class _Hop:
    """One request on the wire: the plugin's, or one the host makes to follow a redirect."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    """As the plugin set them, before the host removes its own and adds credentials."""
    body: bytes | bytearray
    redirects: int = 0


class OutboundHttp:
    """The outbound HTTP client of plugin `plugin`, enforcing `policy`. Safe to share across
    threads; `close` it when the plugin unloads."""

    def __init__(
        self,
        plugin: str,
        policy: HttpPolicy,
        audit: AuditLog,
        resolver: Resolver | None = None,
        *,
        network: SimulatedNetwork | None = None,
        origin: SettingsOrigin | None = None,
    ) -> None:
        self.plugin = plugin
        self.policy = policy
        self._remedies = HttpRemedies(plugin, policy, origin or SettingsOrigin())
        self._audit = audit
        self._resolver = network.resolver if network is not None else resolver
        self._network = network
        self._bucket = TokenBucket(policy.requests_per_second, policy.burst)
        self._mask = SecretMask(_secret_values(policy))
        # Created on the first request: building the TLS context reads the CA bundle (tens of
        # milliseconds), which plugins that never send a request should not pay at load.
        self._transport: PinnedTransport | None = None
        self._transport_lock = threading.Lock()

    def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | bytearray = b"",
        timeout_s: float | None = None,
        deadline: float | None = None,
    ) -> HttpResponse:
        """Send a request for the plugin and return the final response (redirects followed).

        The time allowed is the smallest of `timeout_s`, the policy's timeout and what is left
        until `deadline` (a `time.monotonic()` value), for the whole redirect chain.

        Raises `PermissionDenied` (allowlist, address guard), `InvalidInput` (method, headers,
        URL, body or response too large, Range with credentials), `RateLimited`, `HostTimeout`
        and `Unavailable` (resolution or connection failed, too many redirects, a content
        coding the host does not decode).
        """
        allowed = min(self.policy.timeout_s, math.inf if timeout_s is None else timeout_s)
        end = time.monotonic() + allowed
        if deadline is not None:
            end = min(end, deadline)
        hop = _Hop(method.upper(), url, tuple(headers), body)
        while True:
            response, next_hop = self._hop(hop, end)
            if next_hop is None:
                break
            hop = next_hop
        # A server that echoes requests back (or a hostile redirect target) must not hand the
        # plugin the credentials the host added.
        mask = self._mask.apply_text
        return HttpResponse(
            response.status,
            [(mask(name), mask(value)) for name, value in response.headers],
            self._mask.apply(response.body),
        )

    def close(self) -> None:
        """Close the pooled connections."""
        with self._transport_lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None

    def _final_transport(self) -> httpx.BaseTransport:
        if self._network is not None:
            return self._network.transport
        with self._transport_lock:
            if self._transport is None:
                self._transport = PinnedTransport()
            return self._transport

    def _hop(self, hop: _Hop, end: float) -> tuple[HttpResponse, _Hop | None]:
        started = time.monotonic()
        try:
            url, addresses = self._vet(hop, end)
            headers = self._outgoing_headers(hop, url)
        except HostApiError as exc:
            self._record(hop, started, "deny", reason=self._masked(exc))
            raise
        return self._exchange(hop, url, headers, addresses, end, started)

    def _vet(self, hop: _Hop, end: float) -> tuple[httpx.URL, list[IPAddress]]:
        """Every check before the connection, in order; the plugin's own request (not a
        redirect hop) also has its method, headers, body size and rate checked."""
        first = hop.redirects == 0
        # Unavailable, not InvalidInput: the chain is the server's doing, not a fault in the
        # plugin's request, and as with a server that is down the plugin can only report it or
        # try again later.
        if hop.redirects > self.policy.max_redirects:
            raise Unavailable(
                f"more than {self.policy.max_redirects} redirects; stopped before "
                f"{redact_url(hop.url)}"
            )
        if first:
            _check_method_and_headers(hop)
        url = _parse_url(hop.url)
        if not self.policy.allowlist.allows(url):
            raise PermissionDenied(
                f'{url_origin(url)} is not in the allowed hosts of plugin "{self.plugin}" '
                f"(allowed: {self.policy.allowlist}); {self._remedies.unlisted(url)}"
            )
        if first and len(hop.body) > self.policy.max_request_bytes:
            raise InvalidInput(
                f"the request body is {len(hop.body)} bytes, over the "
                f"{format_size(self.policy.max_request_bytes)} limit"
            )
        if time.monotonic() >= end:
            raise HostTimeout(f"no time left to send the request to {redact_url(hop.url)}")
        if first and (wait := self._bucket.take()):
            raise RateLimited(
                f'plugin "{self.plugin}" is over its limit of '
                f"{self.policy.requests_per_second:g} requests a second",
                retry_after_ms=math.ceil(wait * 1000),
            )
        port = url.port or DEFAULT_PORTS[url.scheme]
        host = url.raw_host.decode("ascii")
        addresses = resolve(
            host,
            port,
            self._resolver,
            policy=self.policy.network,
            plugin=self.plugin,
            remedy=lambda ip, reason, literal: self._remedies.blocked(url, ip, reason, literal),
        )
        return url, addresses

    def _exchange(
        self,
        hop: _Hop,
        url: httpx.URL,
        headers: list[tuple[bytes, bytes]],
        addresses: list[IPAddress],
        end: float,
        started: float,
    ) -> tuple[HttpResponse, _Hop | None]:
        # The transport (its TLS context) may be built now; that time counts against `end`.
        transport = self._final_transport()
        timeout = end - time.monotonic()
        if hop.body:
            # Given its length, httpx sends an iterated body with Content-Length, not chunked.
            headers.append((b"Content-Length", str(len(hop.body)).encode()))
        request = httpx.Request(
            hop.method,
            url,
            headers=headers,
            content=_pieces(hop.body) if hop.body else b"",
            extensions={"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)},
        )
        status: int | None = None
        try:
            with (
                _network_errors(url, timeout),
                _pinned(url.raw_host.decode("ascii"), addresses, end),
            ):
                response = transport.handle_request(request)
                try:
                    status = response.status_code
                    location = response.headers.get("location") if status in _REDIRECTS else None
                    response_headers = _response_headers(response.headers)
                    # A redirect's own body is never shown to the plugin, so it is not read.
                    body = b"" if location is not None else self._read_body(response, url, end)
                    wire_size = len(body)
                    codings = _content_codings(response.headers)
                    if codings and body:
                        body = self._decode(body, codings, url)
                        response_headers = [
                            (name, value)
                            for name, value in response_headers
                            if name not in ("content-encoding", "content-length")
                        ]
                finally:
                    response.close()
        except HostApiError as exc:
            self._record(hop, started, "allow", status=status, reason=self._masked(exc))
            raise
        self._record(hop, started, "allow", status=status, bytes_in=wire_size)
        result = HttpResponse(status, response_headers, body)
        return result, None if location is None else _redirect(hop, url, status, location)

    def _outgoing_headers(self, hop: _Hop, url: httpx.URL) -> list[tuple[bytes, bytes]]:
        # Credentials are chosen afresh for every hop's URL, so a secret only ever goes to the
        # hosts it is bound to; a bound header replaces the plugin's header of the same name, so
        # the plugin cannot choose the credentials of a bound host. First binding wins.
        injected: dict[str, tuple[str, str]] = {}
        for binding in self.policy.credentials:
            if binding.hosts.allows(url):
                name, value = binding.header()
                injected.setdefault(name.lower(), (name, value))
        # The host owns Host (a Host other than the URL's would reach a virtual host the
        # allowlist never approved), the framing headers (httpx derives them from the body) and
        # the hop-by-hop ones (they describe a connection the plugin does not have), and the
        # content coding (it decodes the response itself, so the mask sees plain bytes).
        if injected and (ranged := _RANGE_HEADERS & {name.lower() for name, _ in hop.headers}):
            raise InvalidInput(
                f"{' and '.join(sorted(ranged))} cannot be sent to {url_origin(url)}: the host "
                "adds credentials there, and a byte range could return a slice of them"
            )
        kept = [
            (name, value)
            for name, value in hop.headers
            if name.lower() not in HOST_OWNED_HEADERS and name.lower() not in injected
        ]
        outgoing = [*kept, ("Accept-Encoding", ACCEPT_ENCODING), *injected.values()]
        return [(name.encode("ascii"), value.encode()) for name, value in outgoing]

    def _read_body(self, response: httpx.Response, url: httpx.URL, end: float) -> bytes:
        """The body, whole: more than the policy's maximum is an error, never a truncation."""
        limit = self.policy.max_response_bytes

        def too_large() -> InvalidInput:
            return InvalidInput(
                f"response from {redact_url(str(url))} exceeds {format_size(limit)}"
            )

        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large()  # refused before reading a byte of it
        chunks: list[bytes] = []
        size = 0
        # Raw bytes, as sent (decoded after, with its own limit). Each read is bounded by the
        # time left (`_DeadlineStream`); this check catches a server that trickles the body.
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > limit:
                raise too_large()
            if time.monotonic() > end:
                raise HostTimeout(f"the response from {redact_url(str(url))} took too long")
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, body: bytes, codings: list[str], url: httpx.URL) -> bytes:
        """`body` with its content codings undone, last applied first; the decoded size is
        limited like the raw one, so no compression bomb gets past the limit."""
        limit = self.policy.max_response_bytes
        where = redact_url(str(url))
        for coding in reversed(codings):
            wbits = _CODINGS.get(coding)
            if wbits is None:
                # Handing it over encoded would let the plugin decode what the mask never saw.
                raise Unavailable(
                    f'the response from {where} uses content coding "{coding}", which the '
                    f"host does not decode (it asks for {ACCEPT_ENCODING})"
                )
            try:
                body = _inflate(body, wbits, limit)
            except zlib.error:
                if coding != "deflate":
                    raise Unavailable(f"the {coding} response from {where} is corrupt") from None
                try:  # "deflate" is often sent without its zlib header (RFC 9110 §8.4.1.2)
                    body = _inflate(body, -zlib.MAX_WBITS, limit)
                except zlib.error:
                    raise Unavailable(f"the deflate response from {where} is corrupt") from None
            if len(body) > limit:
                raise InvalidInput(f"response from {where} exceeds {format_size(limit)} decoded")
        return body

    def _masked(self, error: HostApiError) -> str:
        """`error`'s message, masked in place: it may quote what a server sent (a malformed
        header line, a redirect's URL)."""
        error.message = self._mask.apply_text(error.message)
        return error.message

    def _record(
        self,
        hop: _Hop,
        started: float,
        decision: Decision,
        *,
        status: int | None = None,
        bytes_in: int = 0,
        reason: str | None = None,
    ) -> None:
        _observe.egress(self.plugin, decision)
        if (watcher := _observe.watcher()) is not None:
            watcher.http_request(
                _observe.HttpRequest(
                    method=hop.method,
                    url=redact_url(hop.url),
                    decision=decision,
                    status=status,
                    bytes_out=len(hop.body) if decision == "allow" else 0,
                    bytes_in=bytes_in,
                    seconds=time.monotonic() - started,
                    reason=reason,
                )
            )
        write_entry(
            self._audit,
            AuditEntry(
                plugin=self.plugin,
                method=hop.method,
                url=hop.url,
                decision=decision,
                status=status,
                bytes_out=len(hop.body) if decision == "allow" else 0,
                bytes_in=bytes_in,
                duration_ms=(time.monotonic() - started) * 1000,
                reason=reason,
            ),
        )


def _secret_values(policy: HttpPolicy) -> list[str]:
    """What to mask: each form the host sends, so that one encoded whole is masked whole."""
    values = []
    for binding in policy.credentials:
        values += [binding.secret.reveal(), binding.header()[1]]
        if binding.username is not None:
            pair = f"{binding.username}:{binding.secret.reveal()}"
            values += [pair, basic_token(binding.username, binding.secret)]
    return values


def _check_method_and_headers(hop: _Hop) -> None:
    if hop.method not in METHODS:
        raise InvalidInput(f'method "{hop.method}" is not one of {", ".join(METHODS)}')
    for name, value in hop.headers:
        if not TOKEN.fullmatch(name):
            raise InvalidInput(f'"{name}" is not a valid header name')
        if any(char in value for char in "\r\n\0"):
            raise InvalidInput(f'the value of header "{name}" holds a line break or NUL')


def _parse_url(text: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f'"{redact_url(text)}" is not a valid URL: {exc}') from None
    if url.scheme not in DEFAULT_PORTS or not url.raw_host:
        raise InvalidInput(f'"{redact_url(text)}" is not an absolute http or https URL')
    if url.userinfo:
        raise InvalidInput(
            "URLs with user info (user:password@) are refused: "
            "the operator binds credentials to hosts"
        )
    return url


def _pieces(body: bytes | bytearray) -> Iterator[bytes]:
    for start in range(0, len(body), _WRITE_CHUNK):
        yield bytes(body[start : start + _WRITE_CHUNK])


def _content_codings(headers: httpx.Headers) -> list[str]:
    """The codings applied to the body, in the order applied; identity is no coding."""
    return [
        token
        for value in headers.get_list("content-encoding")
        for token in (part.strip().lower() for part in value.split(","))
        if token and token != "identity"
    ]


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """`data` decompressed; at most `limit` + 1 bytes of it, so the caller sees it overflow."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)
    if not inflater.eof and len(out) <= limit:
        raise zlib.error("truncated stream")
    return out


def _redirect(hop: _Hop, url: httpx.URL, status: int, location: str) -> _Hop:
    """The hop that follows `hop`'s redirect response."""
    try:
        target: httpx.URL | None = url.join(location)
    except httpx.InvalidURL:
        target = None  # the next hop's URL check refuses it, and the refusal is audited
    method, headers, body = hop.method, hop.headers, hop.body
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", b""
        headers = tuple(h for h in headers if h[0].lower() not in _BODY_HEADERS)
    if target is None or url_origin(target) != url_origin(url):
        headers = tuple(h for h in headers if h[0].lower() not in _ORIGIN_BOUND_HEADERS)
    next_url = location if target is None else str(target)
    return _Hop(method, next_url, headers, body, hop.redirects + 1)


def _response_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    # Besides the standard hop-by-hop headers, those a Connection header names are hop-by-hop.
    listed = {
        token.strip().lower()
        for value in headers.get_list("connection")
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in headers.multi_items()
        if name not in HOP_BY_HOP_HEADERS and name not in listed
    ]


@contextmanager
def _network_errors(url: httpx.URL, timeout: float) -> Iterator[None]:
    """httpcore's exceptions as the plugin sees them; messages name the URL, never headers."""
    where = redact_url(str(url))
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise HostTimeout(f"request to {where} timed out after {timeout:.3g} s") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise Unavailable(REDACTOR.redact(f"request to {where} failed: {exc}")) from exc


@dataclass(frozen=True)
class _Pin:
    host: str
    addresses: tuple[IPAddress, ...]
    """What the guard vetted for `host`."""
    end: float
    """The `time.monotonic()` value by which the exchange must be over."""


# The request in progress on this thread (or task). httpcore connects, reads and writes inside
# `handle_request` and the response's iteration, on the caller's thread, so the backend and its
# streams read it there.
_PIN: ContextVar[_Pin | None] = ContextVar("corral_http_pin", default=None)


@contextmanager
def _pinned(host: str, addresses: Sequence[IPAddress], end: float) -> Iterator[None]:
    token = _PIN.set(_Pin(host, tuple(addresses), end))
    try:
        yield
    finally:
        _PIN.reset(token)


def _time_left(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """`timeout`, cut to what is left of the request in progress; `expired` once none is."""
    pin = _PIN.get()
    if pin is None:
        return timeout
    remaining = pin.end - time.monotonic()
    if remaining <= 0:
        raise expired("the request's time is up")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline of the request using it.

    httpcore gives each read the request's whole timeout, so a server that sends a little just
    before each read times out could stretch a request far past its deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        remaining = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, remaining))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to the addresses vetted for the request in progress, never to a fresh DNS
    answer: there is no second lookup for a rebinding attacker to answer differently."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        pin = _PIN.get()
        if pin is None or pin.host != host:
            raise httpcore.ConnectError(f"no vetted address for {host}")
        end = None if timeout is None else time.monotonic() + timeout
        *others, last = pin.addresses
        for ip in others:
            try:
                return self._connect(ip, port, end, local_address, socket_options)
            except httpcore.ConnectError:
                continue  # the next vetted address may answer
        return self._connect(last, port, end, local_address, socket_options)

    def _connect(
        self,
        ip: IPAddress,
        port: int,
        end: float | None,
        local_address: str | None,
        socket_options: Any,
    ) -> httpcore.NetworkStream:
        remaining = None if end is None else end - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise httpcore.ConnectTimeout(f"connecting to {ip} took too long")
        stream = super().connect_tcp(str(ip), port, remaining, local_address, socket_options)
        return _DeadlineStream(stream)


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport whose TCP connections go to the addresses the guard vetted.

    The URL keeps its host name, so the Host header, the TLS SNI and certificate verification
    all use that name, while the socket connects to the vetted IP. `httpx.HTTPTransport` cannot
    be given a network backend (it builds its httpcore pool itself, and replacing its private
    `_pool` would quietly fall back to ordinary DNS if httpx renamed it), so this transport
    drives an httpcore pool directly. The alternative, an IP in the URL plus the `sni_hostname`
    extension, would also verify the name, but the pool would then key connections by IP and
    could reuse one verified for a.example for a request to b.example on the same address.
    """

    def __init__(self) -> None:
        # `create_ssl_context` trusts certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR when set
        # (an operator's private CA).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=_PinnedBackend(),
            keepalive_expiry=5.0,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._pool.handle_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_CoreStream(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _CoreStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()
