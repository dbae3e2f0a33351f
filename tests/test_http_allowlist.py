"""The outbound HTTP allowlist: pattern syntax, matching, the manifest/operator intersection,
manifests that leave the hosts to the operator, and internal addresses the operator names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address

import pytest

from corral._errors import PermissionDenied
from corral.capabilities.http._allowlist import Allowlist, HostPattern
from corral.capabilities.http._audit import AuditLog
from corral.capabilities.http._client import OutboundHttp
from corral.capabilities.http._guard import resolve
from corral.capabilities.http._policy import HttpOptions, HttpPolicy, build_policy

MATCHES = [
    # scheme
    ("https://api.example.com", "https://api.example.com/issues", True),
    ("https://api.example.com", "http://api.example.com/issues", False),
    ("http://api.example.com", "https://api.example.com/", False),
    # default, explicit and wildcard ports
    ("https://api.example.com", "https://api.example.com:443/", True),
    ("https://api.example.com", "https://api.example.com:8443/", False),
    ("http://api.example.com", "http://api.example.com:80/", True),
    ("https://api.example.com:8443", "https://api.example.com:8443/", True),
    ("https://api.example.com:8443", "https://api.example.com/", False),
    ("https://api.example.com:443", "https://api.example.com/", True),
    ("https://api.example.com:*", "https://api.example.com:1/", True),
    ("https://api.example.com:*", "https://api.example.com/", True),
    ("https://api.example.com:*", "http://api.example.com:8080/", False),
    # wildcards: any depth of subdomain, never the apex, never a look-alike
    ("https://*.example.com", "https://a.example.com/", True),
    ("https://*.example.com", "https://a.b.c.example.com/", True),
    ("https://*.example.com", "https://example.com/", False),
    ("https://*.example.com", "https://badexample.com/", False),
    ("https://*.example.com", "https://example.com.evil.net/", False),
    ("https://*.example.com", "https://a.example.com.evil.net/", False),
    ("https://*.example.com", "https://a.example.com:8443/", False),
    ("https://*.example.com:*", "https://a.example.com:8443/", True),
    ("https://api.example.com", "https://api.example.com.evil.net/", False),
    ("https://api.example.com", "https://x.api.example.com/", False),
    # case and trailing dot
    ("https://api.example.com", "https://API.Example.COM/", True),
    ("HTTPS://API.example.COM", "https://api.example.com/", True),
    ("https://api.example.com", "https://api.example.com./", True),
    ("https://api.example.com.", "https://api.example.com/", True),
    ("https://*.example.com", "https://a.example.com./", True),
    # internationalised names, either spelling on either side
    ("https://bücher.example", "https://xn--bcher-kva.example/", True),
    ("https://xn--bcher-kva.example", "https://bücher.example/", True),
    ("https://BÜCHER.example", "https://bücher.example/", True),
    ("https://*.bücher.example", "https://shop.xn--bcher-kva.example/", True),
    ("https://bücher.example", "https://bucher.example/", False),
    # IP literals
    ("http://192.0.2.10", "http://192.0.2.10/", True),
    ("http://192.0.2.10", "http://192.0.2.11/", False),
    ("http://192.0.2.10:8080", "http://192.0.2.10:8080/", True),
    ("http://192.0.2.10", "http://[::ffff:192.0.2.10]/", False),
    ("http://127.0.0.1", "http://127.1/", False),
    ("http://[2001:db8::1]", "http://[2001:db8:0:0::1]/", True),
    ("http://[2001:DB8::1]", "http://[2001:db8::1]/", True),
    ("http://[2001:db8::1]:*", "http://[2001:db8::1]:9/", True),
    ("http://[2001:db8::1]", "http://[2001:db8::2]/", False),
    # URLs that are never allowed
    ("https://api.example.com", "https://user:pw@api.example.com/", False),
    ("https://api.example.com", "https://user@api.example.com/", False),
    ("https://api.example.com", "/relative/path", False),
    ("https://api.example.com", "ftp://api.example.com/", False),
    ("https://api.example.com", "https://api.example.com:99999/", False),
]


@pytest.mark.parametrize(("pattern", "url", "allowed"), MATCHES)
def test_matching(pattern: str, url: str, allowed: bool) -> None:
    assert Allowlist([pattern]).allows(url) is allowed


def test_an_empty_allowlist_denies_everything() -> None:
    assert not Allowlist([]).allows("https://example.com/")
    assert not Allowlist.effective([], None).allows("https://example.com/")
    assert str(Allowlist([])) == "none"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("https://API.Example.com:443", "https://api.example.com"),
        ("https://*.Example.com.", "https://*.example.com"),
        ("http://example.com:*", "http://example.com:*"),
        ("https://bücher.example:8443", "https://xn--bcher-kva.example:8443"),
        ("http://[2001:db8:0::1]", "http://[2001:db8::1]"),
        ("http://192.0.2.1:80", "http://192.0.2.1"),
    ],
)
def test_patterns_print_in_canonical_form(text: str, canonical: str) -> None:
    assert str(HostPattern.parse(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com", 'host pattern "example.com": no scheme; write it like'),
        ("ftp://example.com", 'the scheme must be http or https, not "ftp"'),
        ("https://example.com/", "without a path"),
        ("https://example.com/api", "without a path"),
        ("https://example.com?q=1", "without a query"),
        ("https://example.com#top", "without a fragment"),
        ("https://user@example.com", "without user info"),
        ("https://user:pw@example.com", "without user info"),
        ("https://", "no host"),
        ("https://example.com:", 'not ""'),
        ("https://example.com:0", '1 to 65535 or "*", not "0"'),
        ("https://example.com:65536", 'not "65536"'),
        ("https://example.com:http", 'not "http"'),
        ("https://*", '"*" may only stand for the leading labels'),
        ("https://a.*.example.com", '"*" may only stand for the leading labels'),
        ("https://*example.com", '"*" may only stand for the leading labels'),
        ("https://*.192.0.2.1", '"*." can only precede a domain name'),
        ("https://*.[::1]", '"*." can only precede a domain name'),
        ("https://256.0.0.1", '"256.0.0.1" is not an IPv4 address'),
        ("https://127.1", '"127.1" is not an IPv4 address'),
        ("https://::1", 'IPv6 addresses go in brackets: "[::1]"'),
        ("https://[::1", 'needs its closing "]"'),
        ("https://[::1]x", 'unexpected "x"'),
        ("https://[not-v6]", '"not-v6" is not an IPv6 address'),
        ("https://[fe80::1%eth0]", "cannot name a zone"),
        ("https://a..example.com", "is not a valid host name"),
        ("https://-a.example.com", "is not a valid host name"),
        ("https://a b.example.com", "is not a valid host name"),
        ("https://x\u200d.example", "is not a valid internationalised name"),
    ],
)
def test_bad_patterns_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^host pattern") as caught:
        HostPattern.parse(text)
    assert message in str(caught.value)


def test_an_allowlist_of_text_reports_the_bad_pattern() -> None:
    with pytest.raises(ValueError) as caught:
        Allowlist(["https://fine.example", "https://ok.example/x"])
    assert str(caught.value).startswith('host pattern "https://ok.example/x"')


@pytest.mark.parametrize(
    ("manifest", "operator", "effective"),
    [
        (["https://*.atlassian.net"], None, "https://*.atlassian.net"),
        (["https://*.atlassian.net"], [], "none"),
        (["https://*.atlassian.net"], ["https://acme.atlassian.net"], "https://acme.atlassian.net"),
        (["https://acme.atlassian.net"], ["https://*.atlassian.net"], "https://acme.atlassian.net"),
        (["https://*.atlassian.net"], ["https://*.eu.atlassian.net"], "https://*.eu.atlassian.net"),
        (["https://*.atlassian.net"], ["https://atlassian.net"], "none"),
        (["https://*.atlassian.net"], ["http://acme.atlassian.net"], "none"),
        (
            ["https://api.example.com:*"],
            ["https://api.example.com:8443"],
            "https://api.example.com:8443",
        ),
        (["https://api.example.com"], ["https://api.example.com:*"], "https://api.example.com"),
        (["https://api.example.com"], ["https://api.example.com:8443"], "none"),
        # the operator narrows; what the manifest does not ask for stays out
        (["https://a.example"], ["https://a.example", "https://b.example"], "https://a.example"),
        (
            ["https://a.example", "https://*.b.example"],
            ["https://*.example"],
            "https://a.example, https://*.b.example",
        ),
    ],
)
def test_effective_allowlist_is_the_intersection(
    manifest: list[str], operator: list[str] | None, effective: str
) -> None:
    assert str(Allowlist.effective(manifest, operator)) == effective


def test_effective_allowlist_allows_only_what_both_allow() -> None:
    both = Allowlist.effective(["https://*.atlassian.net"], ["https://*.eu.atlassian.net"])
    assert both.allows("https://acme.eu.atlassian.net/rest")
    assert not both.allows("https://acme.atlassian.net/rest")
    assert not both.allows("https://eu.atlassian.net/rest")


# --- manifests that leave the hosts to the operator (security.operator_hosts) --------------

JIRA_MANIFEST = ["https://*.atlassian.net"]


@pytest.mark.parametrize(
    ("operator", "effective"),
    [
        # each deployment of a Jira connector is one line of operator config
        (["https://acme.atlassian.net"], "https://acme.atlassian.net"),
        (["https://jira.corp.example:8443"], "https://jira.corp.example:8443"),
        (["http://127.0.0.1:8080"], "http://127.0.0.1:8080"),
        # the operator's list is taken whole, so it still narrows
        (["https://jira.corp.example", "https://*.eu.atlassian.net"], None),
        ([], "none"),
        # nothing listed: the manifest's own patterns
        (None, "https://*.atlassian.net"),
    ],
)
def test_operator_hosts_takes_the_operator_list_whole(
    operator: list[str] | None, effective: str | None
) -> None:
    allowlist = Allowlist.effective(JIRA_MANIFEST, operator, operator_hosts=True)
    assert str(allowlist) == (effective or ", ".join(operator or []))


def test_without_operator_hosts_an_operator_cannot_add_a_host() -> None:
    allowlist = Allowlist.effective(JIRA_MANIFEST, ["https://jira.corp.example"])
    assert not allowlist.allows("https://jira.corp.example/rest/api/3/myself")


def test_ip_literals_are_the_addresses_patterns_name() -> None:
    allowlist = Allowlist(["http://127.0.0.1:8080", "https://[::1]:*", "https://*.example.com"])
    assert allowlist.ip_literals() == {ip_address("127.0.0.1"), ip_address("::1")}


def _policy(
    manifest: list[str], operator: list[str] | None, *, operator_hosts: bool = True
) -> HttpPolicy:
    return build_policy(
        manifest, HttpOptions(allowed_hosts=operator), [], operator_hosts=operator_hosts
    )


def test_an_ip_literal_the_operator_lists_opens_that_address_only() -> None:
    network = _policy(JIRA_MANIFEST, ["http://127.0.0.1:8080"]).network
    assert resolve("127.0.0.1", 8080, policy=network, plugin="x") == [ip_address("127.0.0.1")]
    with pytest.raises(PermissionDenied, match=r"127\.0\.0\.2 \(loopback\)"):
        resolve("127.0.0.2", 8080, policy=network, plugin="x")
    # A name that resolves to the listed address is still refused: DNS can be re-pointed.
    with pytest.raises(PermissionDenied, match=r"rebind\.example resolves to 127\.0\.0\.1 "):
        resolve("rebind.example", 443, lambda h, p: ["127.0.0.1"], policy=network, plugin="x")


def test_a_manifest_cannot_open_an_internal_address_for_itself() -> None:
    # The operator narrows nothing (None), so the manifest's literal is in the allowlist, but
    # only an operator's list opens the address guard.
    policy = _policy(["http://127.0.0.1:8080"], None, operator_hosts=False)
    assert policy.allowlist.allows("http://127.0.0.1:8080/")
    with pytest.raises(PermissionDenied, match="loopback"):
        resolve("127.0.0.1", 8080, policy=policy.network, plugin="x")


@pytest.fixture
def loopback_server() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/redirect?to="):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/redirect?to="))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_one_operator_line_reaches_a_local_server(loopback_server: int) -> None:
    origin = f"http://127.0.0.1:{loopback_server}"
    client = OutboundHttp("jira-sync", _policy(JIRA_MANIFEST, [origin]), AuditLog())
    try:
        assert client.send("GET", f"{origin}/rest/api/3/myself").body == b"ok"
        with pytest.raises(PermissionDenied, match="not in the allowed hosts"):
            client.send("GET", f"http://127.0.0.1:{loopback_server + 1}/")
        with pytest.raises(PermissionDenied, match="not in the allowed hosts"):
            client.send("GET", "https://acme.atlassian.net/rest/api/3/myself")
    finally:
        client.close()


def test_redirects_from_a_listed_literal_are_checked_again(loopback_server: int) -> None:
    origin = f"http://127.0.0.1:{loopback_server}"
    client = OutboundHttp("jira-sync", _policy(JIRA_MANIFEST, [origin]), AuditLog())
    try:
        assert client.send("GET", f"{origin}/redirect?to={origin}/next").body == b"ok"
        for target in (
            f"http://127.0.0.2:{loopback_server}/",
            f"http://localhost:{loopback_server}/",
        ):
            with pytest.raises(PermissionDenied, match="not in the allowed hosts"):
                client.send("GET", f"{origin}/redirect?to={target}")
    finally:
        client.close()
