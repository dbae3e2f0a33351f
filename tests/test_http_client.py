"""Outbound HTTP against real servers on loopback: allowlist, SSRF guard, pinning, redirects,
limits, credentials, redaction and the audit log.

Test host names live under ``.test`` (never resolvable) and reach the servers only through the
stub resolver: a request that did its own DNS lookup would fail.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import ValidationError

from corral._audit import AuditLog
from corral._errors import (
    ConfigError,
    HostTimeout,
    InvalidInput,
    PermissionDenied,
    RateLimited,
    Unavailable,
)
from corral._settings_origin import SettingsOrigin
from corral.capabilities.http._audit import AuditEntry, write_entry
from corral.capabilities.http._client import OutboundHttp
from corral.capabilities.http._guard import NetworkPolicy
from corral.capabilities.http._policy import (
    CredentialOptions,
    HttpOptions,
    HttpPolicy,
    build_policy,
)
from corral.capabilities.http._secrets import (
    REDACTOR,
    Redactor,
    Secret,
    install_redaction,
    resolve_secret,
)

API = "api.example.test"
OTHER = "other.example.test"
SECRET = "s3cret-Token-4d1f"
SECRET_ENV = "CORRAL_TEST_HTTP_SECRET"


# --- a real server -------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


class Server:
    """A ThreadingHTTPServer in a thread, recording every request it gets."""

    def __init__(self, address: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self.release = threading.Event()
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = _QuietServer((address, 0), handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def url(self, host: str, path: str = "/ok", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up on purpose (size limit, timeout) are not failures


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server_state.seen.append(Seen(self.command, self.path, self.headers.items(), body))
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        getattr(self, "route_" + (url.path.strip("/") or "ok"))(query, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    def respond(
        self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route_ok(self, query: dict[str, str], body: bytes) -> None:
        self.respond(
            200,
            b"hello",
            [
                ("X-Test", "1"),
                ("Keep-Alive", "timeout=5"),
                ("X-Private-Hop", "x"),
                ("Connection", "X-Private-Hop"),
                ("Set-Cookie", "a=b"),
            ],
        )

    def route_echo(self, query: dict[str, str], body: bytes) -> None:
        seen = {"headers": self.headers.items(), "body": body.decode()}
        self.respond(200, json.dumps(seen).encode(), [("Content-Type", "application/json")])

    def route_redirect(self, query: dict[str, str], body: bytes) -> None:
        self.respond(int(query.get("status", "302")), headers=[("Location", query["to"])])

    def route_loop(self, query: dict[str, str], body: bytes) -> None:
        self.respond(302, headers=[("Location", f"/loop?n={int(query['n']) + 1}")])

    def route_bytes(self, query: dict[str, str], body: bytes) -> None:
        size = int(query["n"])
        self.send_response(200)
        if query.get("length", "yes") == "yes":
            self.send_header("Content-Length", str(size))
        else:  # delimited by closing the connection: only reading tells the size
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        for start in range(0, size, 8192):
            self.wfile.write(b"x" * min(8192, size - start))

    def route_slow(self, query: dict[str, str], body: bytes) -> None:
        self.server_state.release.wait(float(query["s"]))
        self.respond(200, b"late")


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


class StubResolver:
    """Answers from a table and counts lookups; unknown names fail like real DNS."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.log", REDACTOR.redact)
    yield log
    log.close()


MakeClient = Callable[..., OutboundHttp]


@pytest.fixture
def make_client(server: Server, audit: AuditLog) -> Iterator[MakeClient]:
    """OutboundHttp for plugin "x", allowed to reach API and OTHER on the test server's port,
    with loopback granted explicitly; keyword arguments change the defaults."""
    clients: list[OutboundHttp] = []

    def make(
        *,
        allowed_hosts: list[str] | None = None,
        http: dict[str, Any] | None = None,
        credentials: Sequence[dict[str, Any]] = (),
        resolver: StubResolver | None = None,
        operator_hosts: bool = False,
        origin: SettingsOrigin | None = None,
    ) -> OutboundHttp:
        hosts = allowed_hosts or [f"http://{API}:{server.port}", f"http://{OTHER}:{server.port}"]
        options = HttpOptions.model_validate(
            {"allow_private_networks": ["127.0.0.0/8"], **(http or {})}
        )
        policy = build_policy(
            hosts,
            options,
            [CredentialOptions.model_validate(c) for c in credentials],
            operator_hosts=operator_hosts,
        )
        resolver = resolver or StubResolver({API: ["127.0.0.1"], OTHER: ["127.0.0.1"]})
        client = OutboundHttp("x", policy, audit, resolver, origin=origin)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return f"env:{SECRET_ENV}"


# --- plain requests ------------------------------------------------------------------------


def test_get_reaches_an_allowed_host(
    make_client: MakeClient, server: Server, audit: AuditLog
) -> None:
    response = make_client().send("GET", server.url(API, "/ok?token=abc"))

    assert (response.status, response.body) == (200, b"hello")
    names = [name for name, _ in response.headers]
    assert ("x-test", "1") in response.headers
    assert ("set-cookie", "a=b") in response.headers
    assert "keep-alive" not in names and "connection" not in names
    assert "x-private-hop" not in names  # named by Connection: hop-by-hop too
    [entry] = audit.records()
    assert entry["decision"] == "allow" and entry["status"] == 200
    assert (entry["plugin"], entry["method"], entry["bytes_in"]) == ("x", "GET", 5)
    assert entry["url"] == f"http://{API}:{server.port}/ok?<redacted>"
    assert "abc" not in (audit.path or Path()).read_text()


def test_the_plugin_cannot_choose_the_host_header(make_client: MakeClient, server: Server) -> None:
    make_client().send("GET", server.url(API), [("Host", "internal.corp"), ("Connection", "close")])
    [seen] = server.seen
    assert seen.values("Host") == [f"{API}:{server.port}"]
    assert seen.values("Connection") != ["close"]


def test_post_sends_the_body(make_client: MakeClient, server: Server, audit: AuditLog) -> None:
    response = make_client().send("post", server.url(API, "/echo"), [("X-A", "1")], b"payload")
    assert json.loads(response.body)["body"] == "payload"
    assert server.seen[0].method == "POST"
    assert audit.records()[0]["bytes_out"] == 7


def test_head_has_no_body(make_client: MakeClient, server: Server) -> None:
    response = make_client().send("HEAD", server.url(API))
    assert (response.status, response.body) == (200, b"")


# --- allowlist and input checks ------------------------------------------------------------


def test_a_host_off_the_allowlist_is_denied(make_client: MakeClient, audit: AuditLog) -> None:
    client = make_client(allowed_hosts=["https://*.atlassian.net"])
    with pytest.raises(PermissionDenied) as caught:
        client.send("GET", "https://evil.com/steal?x=1")
    assert caught.value.message == (
        'https://evil.com is not in the allowed hosts of plugin "x" (allowed: https://*.atlassian.net)'
        "; its manifest does not list it, and the operator can only narrow that list: add "
        '"https://evil.com" to security.allowed_hosts in the plugin\'s manifest.yaml'
    )
    [entry] = audit.records()
    assert entry["decision"] == "deny" and entry["reason"] == caught.value.message
    assert entry["url"] == "https://evil.com/steal?<redacted>" and entry["status"] is None


@pytest.mark.parametrize(
    ("method", "url", "headers", "message"),
    [
        ("TRACE", f"http://{API}/", [], 'method "TRACE" is not one of GET, HEAD'),
        ("GET", "ftp://files.example.test/", [], "is not an absolute http or https URL"),
        ("GET", "/relative", [], "is not an absolute http or https URL"),
        ("GET", "http://[::1/", [], "is not a valid URL"),
        (
            "GET",
            f"http://me:hunter2@{API}/",
            [],
            "URLs with user info (user:password@) are refused",
        ),
        ("GET", f"http://{API}/", [("Bad Name", "v")], '"Bad Name" is not a valid header name'),
        # `$` alone would accept a trailing newline
        ("GET", f"http://{API}/", [("X-A\n", "v")], "is not a valid header name"),
        ("GET", f"http://{API}/", [("X-A", "v\r\nX-B: smuggled")], "holds a line break"),
    ],
)
def test_invalid_requests_are_refused(
    make_client: MakeClient,
    server: Server,
    audit: AuditLog,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    message: str,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_client().send(method, url, headers)
    assert message in caught.value.message
    assert "hunter2" not in caught.value.message
    [entry] = audit.records()
    assert entry["decision"] == "deny" and "hunter2" not in json.dumps(entry)
    assert server.seen == []


def test_request_body_limit(make_client: MakeClient, server: Server) -> None:
    client = make_client(http={"max_request_body": "1KB"})
    client.send("POST", server.url(API, "/echo"), body=b"a" * 1024)
    with pytest.raises(InvalidInput, match="the request body is 1025 bytes, over the 1 KiB limit"):
        client.send("POST", server.url(API, "/echo"), body=b"a" * 1025)
    assert len(server.seen) == 1


# --- the address guard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 (loopback)"),
        ("169.254.169.254", "169.254.169.254 (cloud metadata)"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1 (IPv4-mapped 127.0.0.1: loopback)"),
        ("10.0.0.1", "10.0.0.1 (private)"),
    ],
)
def test_internal_addresses_are_blocked_before_connecting(
    make_client: MakeClient, server: Server, audit: AuditLog, address: str, reason: str
) -> None:
    resolver = StubResolver({API: [address]})
    client = make_client(http={"allow_private_networks": False}, resolver=resolver)
    with pytest.raises(PermissionDenied) as caught:
        client.send("GET", server.url(API))
    assert caught.value.message.startswith(
        f'{API} resolves to {reason}, which plugin "x" may not reach; the operator allows it with'
    )
    assert server.seen == []
    assert audit.records()[0]["decision"] == "deny"


CONFIG_FILE = SettingsOrigin(Path("/srv/corral.yaml"))


@pytest.mark.parametrize(
    ("address", "origin", "fix"),
    [
        (
            "127.0.0.1",
            CONFIG_FILE,
            "plugins.x.http.allow_private_networks: true in /srv/corral.yaml",
        ),
        (
            "::ffff:10.0.0.1",
            SettingsOrigin(),
            'PluginHost(plugins={"x": {"http": {"allow_private_networks": True}}})',
        ),
        (
            "169.254.169.254",
            CONFIG_FILE,
            'plugins.x.http.allow_private_networks: ["169.254.169.254/32"] in /srv/corral.yaml',
        ),
    ],
)
def test_a_blocked_address_names_the_setting_that_opens_it(
    make_client: MakeClient, server: Server, address: str, origin: SettingsOrigin, fix: str
) -> None:
    resolver = StubResolver({API: [address]})
    client = make_client(http={"allow_private_networks": False}, resolver=resolver, origin=origin)
    with pytest.raises(PermissionDenied) as caught:
        client.send("GET", server.url(API))
    assert caught.value.message.endswith(f"; the operator allows it with {fix}")


def test_the_named_setting_opens_the_blocked_address(
    make_client: MakeClient, server: Server
) -> None:
    # The advice must work: following it literally lets the same request through.
    hosts = [f"http://127.0.0.1:{server.port}"]
    blocked = make_client(
        allowed_hosts=hosts, http={"allow_private_networks": False}, origin=CONFIG_FILE
    )
    with pytest.raises(PermissionDenied) as caught:
        blocked.send("GET", f"http://127.0.0.1:{server.port}/")
    advice = f'plugins.x.http.allowed_hosts: ["http://127.0.0.1:{server.port}"]'
    assert advice in caught.value.message
    allowed = make_client(
        allowed_hosts=hosts, http={"allow_private_networks": False, "allowed_hosts": hosts}
    )
    assert allowed.send("GET", f"http://127.0.0.1:{server.port}/").status == 200


def test_an_unlisted_host_names_whose_list_refused_it(make_client: MakeClient) -> None:
    url = "https://b.example.test/"
    manifest = ["https://a.example.test", "https://b.example.test"]
    narrowed = make_client(
        allowed_hosts=manifest, http={"allowed_hosts": manifest[:1]}, origin=CONFIG_FILE
    )
    with pytest.raises(PermissionDenied) as caught:
        narrowed.send("GET", url)
    assert caught.value.message.endswith(
        "; the operator allows it with plugins.x.http.allowed_hosts: "
        '["https://a.example.test", "https://b.example.test"] in /srv/corral.yaml'
    )
    operator_chooses = make_client(allowed_hosts=manifest[:1], operator_hosts=True)
    with pytest.raises(PermissionDenied) as caught:
        operator_chooses.send("GET", url)
    assert caught.value.message.endswith(
        '; the operator allows it with PluginHost(plugins={"x": {"http": {"allowed_hosts": '
        '["https://b.example.test"]}}})'
    )


def test_one_blocked_record_refuses_the_name(make_client: MakeClient, server: Server) -> None:
    # 127.0.0.1 is granted, but the name also points at an internal network that is not.
    client = make_client(resolver=StubResolver({API: ["127.0.0.1", "10.1.2.3"]}))
    with pytest.raises(PermissionDenied, match=r"resolves to 10\.1\.2\.3 \(private\)"):
        client.send("GET", server.url(API))
    assert server.seen == []


def test_ip_literals_are_checked_without_a_lookup(make_client: MakeClient, server: Server) -> None:
    resolver = StubResolver({})
    client = make_client(
        allowed_hosts=[f"http://127.0.0.1:{server.port}"],
        http={"allow_private_networks": False},
        resolver=resolver,
    )
    with pytest.raises(
        PermissionDenied, match=r'^127\.0\.0\.1 \(loopback\) is an address plugin "x"'
    ):
        client.send("GET", server.url("127.0.0.1"))
    assert resolver.calls == [] and server.seen == []


def test_an_unknown_name_is_unavailable(make_client: MakeClient, server: Server) -> None:
    with pytest.raises(Unavailable, match=f"cannot resolve {API}: Name or service not known"):
        make_client(resolver=StubResolver({})).send("GET", server.url(API))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "documentation"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd12::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("fd00:ec2::254", "cloud metadata"),
        ("2001:db8::1", "documentation"),
        ("::127.0.0.1", "IPv4-compatible 127.0.0.1: loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254: cloud metadata"),
        ("2002:a00:1::1", "6to4 10.0.0.1: private"),
        ("2002:808:808::1", None),
    ],
)
def test_address_classes(address: str, reason: str | None) -> None:
    assert NetworkPolicy().check_address(ip_address(address)) == reason


def test_private_grants() -> None:
    lan = NetworkPolicy(allow_private=True)
    assert lan.check_address(ip_address("10.0.0.1")) is None
    assert lan.check_address(ip_address("::ffff:127.0.0.1")) is None
    # the metadata endpoint stays shut unless named
    assert lan.check_address(ip_address("169.254.169.254")) == "cloud metadata"
    named = NetworkPolicy(allowed_cidrs=(ip_network("169.254.169.254/32"),))
    assert named.check_address(ip_address("169.254.169.254")) is None
    assert named.check_address(ip_address("169.254.169.253")) == "link-local"


# --- pinning -------------------------------------------------------------------------------


def test_connects_to_the_vetted_address_with_one_lookup_per_hop(
    make_client: MakeClient,
) -> None:
    try:
        pinned = Server("127.0.0.2")  # nothing for this port listens on 127.0.0.1
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here (only Linux routes all 127/8)")
    try:
        resolver = StubResolver({API: ["127.0.0.2"]})
        client = make_client(allowed_hosts=[f"http://{API}:{pinned.port}"], resolver=resolver)
        target = pinned.url(API, "/redirect?to=/ok")
        response = client.send("GET", target)
        assert response.body == b"hello"
        assert resolver.calls == [API, API]
        assert [seen.path for seen in pinned.seen] == ["/redirect?to=/ok", "/ok"]
    finally:
        pinned.stop()


def test_tls_is_verified_against_the_host_name(
    make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=corral test", "-addext",
         f"subjectAltName=DNS:{API}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure = Server(tls=context)
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        client = make_client(
            allowed_hosts=[f"https://{API}:{secure.port}", f"https://{OTHER}:{secure.port}"]
        )
        # connected to 127.0.0.1, verified as api.example.test
        assert client.send("GET", secure.url(API, scheme="https")).body == b"hello"
        # same address, but the certificate does not name other.example.test
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            client.send("GET", secure.url(OTHER, scheme="https"))
    finally:
        secure.stop()


# --- redirects -----------------------------------------------------------------------------


def test_redirect_to_a_disallowed_host_is_denied(
    make_client: MakeClient, server: Server, audit: AuditLog
) -> None:
    evil = f"http://evil.example.test:{server.port}/ok"
    with pytest.raises(
        PermissionDenied, match=r"evil\.example\.test:\d+ is not in the allowed hosts"
    ):
        make_client().send("GET", server.url(API, f"/redirect?to={evil}"))
    assert len(server.seen) == 1
    first, second = audit.records()
    assert (first["decision"], first["status"]) == ("allow", 302)
    assert (second["decision"], second["url"]) == ("deny", evil)
    assert "not in the allowed hosts" in second["reason"]


def test_redirect_to_an_internal_address_is_denied(make_client: MakeClient, server: Server) -> None:
    resolver = StubResolver({API: ["127.0.0.1"], OTHER: ["169.254.169.254"]})
    client = make_client(resolver=resolver)
    with pytest.raises(PermissionDenied, match="cloud metadata"):
        client.send("GET", server.url(API, f"/redirect?to={server.url(OTHER)}"))
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    ("status", "method", "followed_as", "body"),
    [
        (303, "POST", "GET", ""),
        (302, "POST", "GET", ""),
        (301, "POST", "GET", ""),
        (302, "PUT", "PUT", "data"),
        (307, "POST", "POST", "data"),
        (308, "PATCH", "PATCH", "data"),
    ],
)
def test_redirect_methods(
    make_client: MakeClient, server: Server, status: int, method: str, followed_as: str, body: str
) -> None:
    response = make_client().send(
        method,
        server.url(API, f"/redirect?status={status}&to=/echo"),
        [("Content-Type", "text/plain")],
        b"data",
    )
    echoed = json.loads(response.body)
    assert (server.seen[1].method, echoed["body"]) == (followed_as, body)
    has_type = any(name.lower() == "content-type" for name, _ in echoed["headers"])
    assert has_type is (body != "")


def test_redirect_chain_limit(make_client: MakeClient, server: Server, audit: AuditLog) -> None:
    client = make_client(http={"max_redirects": 2})
    with pytest.raises(Unavailable, match="more than 2 redirects; stopped before"):
        client.send("GET", server.url(API, "/loop?n=0"))
    assert len(server.seen) == 3
    assert [entry["decision"] for entry in audit.records()] == ["allow"] * 3 + ["deny"]


# --- response size and time ----------------------------------------------------------------


@pytest.mark.parametrize("length", ["yes", "no"])
def test_response_size_limit(make_client: MakeClient, server: Server, length: str) -> None:
    client = make_client(http={"max_response_body": "64KiB"})
    exact = client.send("GET", server.url(API, f"/bytes?n={64 * 1024}&length={length}"))
    assert len(exact.body) == 64 * 1024
    url = server.url(API, f"/bytes?n={64 * 1024 + 1}&length={length}")
    with pytest.raises(InvalidInput) as caught:
        client.send("GET", url)
    assert (
        caught.value.message
        == f"response from http://{API}:{server.port}/bytes?<redacted> exceeds 64 KiB"
    )


def test_the_deadline_bounds_the_request(make_client: MakeClient, server: Server) -> None:
    client = make_client()
    deadline = time.monotonic() + 0.3
    with pytest.raises(HostTimeout, match="timed out after"):
        client.send("GET", server.url(API, "/slow?s=5"), deadline=deadline)
    assert time.monotonic() < deadline + 0.1


def test_the_request_timeout_bounds_the_request(make_client: MakeClient, server: Server) -> None:
    client = make_client()
    started = time.monotonic()
    with pytest.raises(HostTimeout):
        client.send("GET", server.url(API, "/slow?s=5"), timeout_s=0.2)
    assert time.monotonic() - started < 0.3


def test_a_passed_deadline_sends_nothing(make_client: MakeClient, server: Server) -> None:
    with pytest.raises(HostTimeout, match="no time left"):
        make_client().send("GET", server.url(API), deadline=time.monotonic() - 1)
    assert server.seen == []


def test_rate_limit(make_client: MakeClient, server: Server) -> None:
    client = make_client(http={"rate_limit": {"requests_per_second": 1, "burst": 2}})
    client.send("GET", server.url(API))
    client.send("GET", server.url(API))
    with pytest.raises(RateLimited) as caught:
        client.send("GET", server.url(API))
    assert 0 < caught.value.retry_after_ms <= 1000
    assert len(server.seen) == 2


def test_a_closed_port_is_unavailable(make_client: MakeClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(allowed_hosts=[f"http://{API}:{port}"])
    with pytest.raises(Unavailable, match=f"request to http://{API}:{port}/ok failed"):
        client.send("GET", f"http://{API}:{port}/ok")


# --- credentials ---------------------------------------------------------------------------


def _authorization(response_body: bytes) -> list[str]:
    headers = json.loads(response_body)["headers"]
    return [value for name, value in headers if name.lower() == "authorization"]


@pytest.mark.parametrize(
    ("binding", "header", "expected"),
    [
        ({"scheme": "bearer"}, "Authorization", f"Bearer {SECRET}"),
        (
            {"scheme": "basic", "username": "bot"},
            "Authorization",
            "Basic " + base64.b64encode(f"bot:{SECRET}".encode()).decode(),
        ),
        ({"scheme": "header", "header": "X-Api-Key"}, "X-Api-Key", SECRET),
    ],
)
def test_credentials_are_injected_over_the_plugins_header(
    make_client: MakeClient,
    server: Server,
    secret_env: str,
    binding: dict[str, str],
    header: str,
    expected: str,
) -> None:
    bound = {"hosts": [f"http://{API}:{server.port}"], "secret": secret_env, **binding}
    client = make_client(credentials=[bound])
    client.send("GET", server.url(API, "/echo"), [(header.lower(), "chosen-by-plugin")])
    assert server.seen[0].values(header) == [expected]


def test_the_plugins_own_authorization_goes_to_unbound_hosts(
    make_client: MakeClient, server: Server, secret_env: str
) -> None:
    bound = {"hosts": [f"http://{API}:{server.port}"], "scheme": "bearer", "secret": secret_env}
    response = make_client(credentials=[bound]).send(
        "GET", server.url(OTHER, "/echo"), [("Authorization", "Bearer mine")]
    )
    assert _authorization(response.body) == ["Bearer mine"]


def test_credentials_do_not_follow_a_redirect_to_an_unbound_host(
    make_client: MakeClient, server: Server, secret_env: str
) -> None:
    bound = {"hosts": [f"http://{API}:{server.port}"], "scheme": "bearer", "secret": secret_env}
    client = make_client(credentials=[bound])
    response = client.send(
        "GET",
        server.url(API, f"/redirect?to={server.url(OTHER, '/echo')}"),
        [("Authorization", "Bearer mine"), ("X-Keep", "1")],
    )
    assert server.seen[0].values("Authorization") == [f"Bearer {SECRET}"]
    assert _authorization(response.body) == []  # neither the secret nor the plugin's own
    assert server.seen[1].values("X-Keep") == ["1"]
    assert SECRET not in repr(server.seen[1])


def test_the_secret_leaks_nowhere(
    make_client: MakeClient,
    server: Server,
    audit: AuditLog,
    secret_env: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    bound = {
        "hosts": [f"http://{API}:*"],
        "scheme": "basic",
        "username": "bot",
        "secret": secret_env,
    }
    client = make_client(
        allowed_hosts=[f"http://{API}:*", f"http://{OTHER}:{server.port}"], credentials=[bound]
    )
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    client.send("GET", server.url(API))
    client.send("GET", server.url(API, f"/redirect?to={server.url(OTHER)}"))
    for url in (
        f"http://{API}:{closed}/",
        "https://evil.example.test/",
        server.url(API, "/slow?s=5"),
    ):
        with pytest.raises((Unavailable, PermissionDenied, HostTimeout)) as caught:
            client.send("GET", url, timeout_s=0.2)
        errors.append(str(caught.value))

    token = base64.b64encode(f"bot:{SECRET}".encode()).decode()
    assert server.seen[0].values("Authorization") == [f"Basic {token}"]  # it was sent...
    for text in [
        *errors,
        (audit.path or Path()).read_text(),
        *(r.getMessage() for r in caplog.records),
    ]:
        assert SECRET not in text and token not in text  # ...and shown nowhere
    assert any(r.name == "corral.audit" for r in caplog.records)
    assert SECRET not in repr(client.policy) and SECRET not in str(client.policy)


# --- secrets and redaction -----------------------------------------------------------------


def test_secret_hides_its_value() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert secret.reveal() == "hunter2"


def test_resolve_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token"
    path.write_text("from-a-file\n")
    assert resolve_secret(f"file:{path}").reveal() == "from-a-file"
    monkeypatch.setenv("CORRAL_TEST_EMPTY", "")
    for ref, message in [
        ("env:CORRAL_TEST_UNSET_VAR", "secret env:CORRAL_TEST_UNSET_VAR: environment variable"),
        ("env:CORRAL_TEST_EMPTY", "secret env:CORRAL_TEST_EMPTY is empty"),
        (f"file:{tmp_path / 'missing'}", "file not found"),
        ("vault:x", 'is not a reference like "env:NAME"'),
    ]:
        with pytest.raises(ConfigError, match="secret") as caught:
            resolve_secret(ref)
        assert message in str(caught.value)


def test_redactor_masks_values_and_basic_tokens() -> None:
    redactor = Redactor()
    redactor.register(Secret("pass"), username="user")
    redactor.register(Secret("password"))
    token = base64.b64encode(b"user:pass").decode()
    assert redactor.redact(f"a password, a pass, Basic {token}") == "a ***, a ***, Basic ***"


def test_install_redaction_covers_child_loggers(
    secret_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    resolve_secret(secret_env)
    install_redaction()
    logging.getLogger("corral.some.module").warning("token %s in %r", SECRET, {"t": SECRET})
    logging.getLogger("corral.some.module").warning("%d", SECRET)  # a bad call does not raise
    logging.getLogger("elsewhere").warning("token %s", SECRET)  # not ours: left alone
    ours, bad_call, theirs = caplog.records
    assert ours.getMessage() == "token *** in {'t': '***'}"
    assert bad_call.getMessage() == "%d % ('***',)"
    assert SECRET in theirs.getMessage()


# --- operator options ----------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = build_policy(["https://api.example.com"], HttpOptions(), [])
    assert policy == HttpPolicy(
        allowlist=policy.allowlist,
        network=NetworkPolicy(),
        max_redirects=5,
        timeout_s=30.0,
        max_request_bytes=1 << 20,
        max_response_bytes=16 << 20,
        max_requests_per_call=100,
        requests_per_second=10.0,
        burst=20,
        manifest_allowlist=policy.manifest_allowlist,
    )
    assert str(policy.allowlist) == "https://api.example.com"
    assert str(policy.manifest_allowlist) == "https://api.example.com"


def test_policy_values() -> None:
    options = HttpOptions.model_validate(
        {
            "allowed_hosts": ["https://api.example.com"],
            "allow_private_networks": ["10.0.0.0/8", "fd00::/8"],
            "timeout": "500ms",
            "max_response_body": "2MiB",
        }
    )
    policy = build_policy(["https://*.example.com"], options, [])
    assert str(policy.allowlist) == "https://api.example.com"
    assert [str(net) for net in policy.network.allowed_cidrs] == ["10.0.0.0/8", "fd00::/8"]
    assert (policy.timeout_s, policy.max_response_bytes) == (0.5, 2 << 20)
    assert build_policy([], HttpOptions(allow_private_networks=True), []).network.allow_private


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        ({"timeout": "10x"}, "timeout", '"10x" is not a duration like "30s"'),
        ({"timeout": "0s"}, "timeout", "must be longer than zero"),
        ({"max_response_body": "64XB"}, "max_response_body", '"64XB" is not a size like "64MB"'),
        ({"allowed_hosts": ["https://a/b"]}, "allowed_hosts.0", "without a path"),
        ({"allow_private_networks": ["10.0.0.1/8"]}, "allow_private_networks", "host bits set"),
        ({"max_redirects": -1}, "max_redirects", "greater than or equal to 0"),
        ({"rate_limit": {"burst": 0}}, "rate_limit.burst", "greater than or equal to 1"),
        ({"proxy": "x"}, "proxy", "Extra inputs are not permitted"),
    ],
)
def test_http_options_errors_name_the_field(data: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpOptions.model_validate(data)
    error = caught.value.errors()[0]
    assert ".".join(str(part) for part in error["loc"]).startswith(where)
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scheme": "basic"}, 'scheme "basic" needs a username'),
        ({"scheme": "header"}, 'scheme "header" needs a header name'),
        ({"scheme": "bearer", "username": "u"}, 'username is only used with scheme "basic"'),
        ({"scheme": "bearer", "header": "X-Key"}, 'header is only used with scheme "header"'),
        ({"scheme": "header", "header": "Bad Name"}, "is not a valid header name"),
        ({"scheme": "header", "header": "X-Key\n"}, "is not a valid header name"),
        ({"scheme": "header", "header": "Host"}, "is set by the host"),
        ({"scheme": "bearer", "secret": "vault:x"}, 'is not a reference like "env:NAME"'),
        ({"scheme": "digest"}, "Input should be 'basic', 'bearer' or 'header'"),
    ],
)
def test_credential_options_errors(data: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CredentialOptions.model_validate(
            {"hosts": ["https://a.example"], "secret": "env:X", **data}
        )
    assert message in str(caught.value)


def test_an_unreadable_secret_is_a_config_error() -> None:
    bound = CredentialOptions(
        hosts=["https://a.example"], scheme="bearer", secret="env:CORRAL_NOPE"
    )
    with pytest.raises(ConfigError, match="secret env:CORRAL_NOPE: environment variable"):
        build_policy(["https://a.example"], HttpOptions(), [bound])


def test_audit_log_rotates(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log", max_bytes=2000, backups=2)
    for i in range(60):
        write_entry(audit, AuditEntry("p", "GET", f"https://x.example/{i}", "allow", status=200))
    audit.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    newest = [json.loads(line)["url"] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert newest[-1] == "https://x.example/59"
