"""A hostile plugin against outbound HTTP, through a real component and real loopback servers.

The plugin tries every request shape that could hand it back the credentials the host adds
(content codings asked for or not, chains, chunked framing, byte ranges, echoes in base64 at
each alignment, percent, hex and JSON escapes) and must never read the secret; bodies far
larger than one `list<u8>` could carry arrive intact both ways; a server that trickles is cut
at the deadline.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import re
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral import PluginHost
from corral._audit import AuditLog
from corral._errors import HostTimeout, InvalidInput, PluginTimeout
from corral.capabilities.http import MAX_STARTED
from corral.capabilities.http._bodies import MAX_HELD, READ_CHUNK, TEXT_CHUNK, Bodies
from corral.capabilities.http._client import OutboundHttp
from corral.capabilities.http._mask import SecretMask
from corral.capabilities.http._policy import HttpOptions, build_policy

HostFactory = Callable[..., PluginHost]
GRANT = ["network.http.outbound", "config.read", "task.read_write", "kv"]
USER = "robot@acme.test"
SECRET = "hostile-T0ken/+=9xZ"
TOKEN_ENV = "CORRAL_TEST_HOSTILE_TOKEN"
PATTERN = bytes(range(256))
BIG = 16 << 20
TOGETHER = 3

# What an echo server may do to the text it sends back; each reverses with `_decodings`.
FORMS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda b: b,
    "base64": base64.b64encode,
    "base64url": base64.urlsafe_b64encode,
    "percent": lambda b: urllib.parse.quote_from_bytes(b, safe="").encode(),
    "percent-lower": lambda b: urllib.parse.quote_from_bytes(b, safe="").lower().encode(),
    "form": lambda b: urllib.parse.quote_plus(b, safe="").encode(),
    "hex": lambda b: b.hex().encode(),
    "HEX": lambda b: b.hex().upper().encode(),
    "json-escaped": lambda b: "".join(f"\\u{c:04x}" for c in b).encode(),
}


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


# Content codings: (token in Content-Encoding, encoder). The host decodes neither
# "x-reverse" nor "br" (no brotli here; this "br" is plain text with the label), but a plugin
# could undo both by itself.
CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "raw-deflate": ("deflate", _raw_deflate),
    "x-reverse": ("x-reverse", lambda b: b[::-1]),
    "br": ("br", lambda b: b),
}


class _Hostile(BaseHTTPRequestHandler):
    """Echoes the request headers in the encoding, coding, range and framing the query says."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, list[tuple[str, str]]]]
    release: threading.Event
    together: threading.Barrier

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_any(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = b""
        if url.path != "/never-read":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((url.path, self.headers.items()))
        getattr(self, "route_" + url.path.strip("/").replace("-", "_"))(query, body)

    do_GET = do_POST = handle_any

    def route_echo(self, query: dict[str, str], body: bytes) -> None:
        text = b"x" * int(query.get("pad", "0")) + json.dumps(self.headers.items()).encode()
        data = FORMS[query.get("form", "plain")](text)
        applied = []
        for name in filter(None, query.get("coding", "").split(",")):
            token, encode = CODINGS[name]
            # "force": as a server that compresses whatever the client asked for
            if query.get("force") or token in self.headers.get("Accept-Encoding", ""):
                data = encode(data)
                applied.append(token)
        # The credentials as a header name too: hex, a valid one; or percent-encoded in an
        # invalid one, which the client's error message quotes.
        sent = (self.headers.get("X-Api-Key") or self.headers.get("Authorization", "-")).split()
        name = sent[-1].encode().hex()
        if query.get("bad-name"):
            name = urllib.parse.quote(sent[-1], safe="") + " bad"
        status, headers = 200, [("Content-Type", "text/plain"), (name, "1")]
        if applied:
            headers.append(("Content-Encoding", ", ".join(applied)))
        ranged = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if ranged:
            start, end = int(ranged[1]), int(ranged[2])
            headers.append(("Content-Range", f"bytes {start}-{end}/{len(data)}"))
            status, data = 206, data[start : end + 1]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if query.get("framing") == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif query.get("framing") == "gzip-transfer":
            self.send_header("Transfer-Encoding", "gzip, chunked")
            data = gzip.compress(data)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if query.get("framing"):
            for start in range(0, len(data), 7):
                piece = data[start : start + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(data)

    def route_redirect(self, query: dict[str, str], body: bytes) -> None:
        self.send_response(302)
        self.send_header("Location", query["to"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def reply(self, status: int, data: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer with `data` whole, its length announced."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route_bomb(self, query: dict[str, str], body: bytes) -> None:
        self.reply(200, gzip.compress(bytes(int(query["n"]))), (("Content-Encoding", "gzip"),))

    def route_bytes(self, query: dict[str, str], body: bytes) -> None:
        size = int(query["n"])
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        for start in range(0, size, 1 << 20):
            self.wfile.write((PATTERN * 4096)[: min(1 << 20, size - start)])

    def route_digest(self, query: dict[str, str], body: bytes) -> None:
        self.send_response(200)
        self.send_header("X-Size", str(len(body)))
        self.send_header("X-Sha256", hashlib.sha256(body).hexdigest())
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_drip(self, query: dict[str, str], body: bytes) -> None:
        """A body announced whole, then sent a byte at a time."""
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.release.wait(float(query["every"])):
                return

    def route_text(self, query: dict[str, str], body: bytes) -> None:
        """`n` two-byte characters, then the bytes `tail` (hex) says."""
        data = "é".encode() * int(query["n"]) + bytes.fromhex(query.get("tail", ""))
        self.reply(200, data, (("Content-Type", "text/plain; charset=utf-8"),))

    def route_together(self, query: dict[str, str], body: bytes) -> None:
        """Answers only once `TOGETHER` requests wait here at the same time: requests sent
        one after another get 504 after a while."""
        try:
            self.together.wait(timeout=5)
            status, data = 200, f"together {query['i']}".encode()
        except threading.BrokenBarrierError:
            status, data = 504, b"alone"
        self.reply(status, data)

    def route_never_read(self, query: dict[str, str], body: bytes) -> None:
        """Takes the request line and headers, then reads nothing more until released."""
        self.release.wait(30)


class _Server:
    def __init__(self) -> None:
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []
        self.release = threading.Event()
        together = threading.Barrier(TOGETHER)
        handler = type(
            "Handler",
            (_Hostile,),
            {"seen": self.seen, "release": self.release, "together": together},
        )
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    """Two hostile servers: credentials are bound to the first only."""
    running = (_Server(), _Server())
    yield running
    for server in running:
        server.stop()


def _host(
    make_host: HostFactory,
    bound: str,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str = "basic",
    **http: Any,
) -> PluginHost:
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    credential: dict[str, Any] = {"hosts": [bound], "scheme": scheme, "secret": f"env:{TOKEN_ENV}"}
    if scheme == "basic":
        credential["username"] = USER
    if scheme == "header":
        credential["header"] = "X-Api-Key"
    settings = {
        "grant": GRANT,
        "http": {
            "allow_private_networks": ["127.0.0.0/8"],
            "rate_limit": {"requests_per_second": 1000, "burst": 1000},
            **http,
        },
        "credentials": [credential],
    }
    return make_host("hostapi", plugins={"hostapi": settings})


def _http(host: PluginHost, url: str, **args: Any) -> dict[str, Any]:
    answer: dict[str, Any] = host.call("hostapi", "http", {"url": url, "raw": True, **args})
    return answer


def _decodings(data: bytes) -> Iterator[bytes]:
    """`data` and every decoding of it (or of a run inside it) an attacker could try."""
    yield data
    for wbits in (16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS):
        with contextlib.suppress(zlib.error):  # a body handed over still compressed
            yield zlib.decompressobj(wbits).decompress(data)
    yield urllib.parse.unquote_to_bytes(data)
    yield urllib.parse.unquote_to_bytes(data.replace(b"+", b" "))
    yield re.sub(rb"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)).encode(), data)
    for run in re.findall(rb"[0-9a-fA-F]{2,}", data):
        for offset in (0, 1):
            piece = run[offset:]
            yield bytes.fromhex(piece[: len(piece) // 2 * 2].decode())
    for run in re.findall(rb"[A-Za-z0-9+/_-]{4,}", data):
        run = run.translate(bytes.maketrans(b"-_", b"+/"))
        for offset in range(4):
            piece = run[offset:]
            yield base64.b64decode(piece[: len(piece) // 4 * 4])


def _reveals_secret(answer: dict[str, Any]) -> bool:
    texts = [json.dumps(answer).encode()]
    if "ok" in answer:
        texts.append(base64.b64decode(answer["ok"]["body_base64"]))
    token = base64.b64encode(f"{USER}:{SECRET}".encode())
    return any(
        SECRET.encode() in decoded or token in decoded
        for text in texts
        for decoded in _decodings(text)
    )


# --- content codings and framing -----------------------------------------------------------


@pytest.fixture(params=["basic", "bearer", "header"])
def credentialed(
    request: pytest.FixtureRequest,
    make_host: HostFactory,
    servers: tuple[_Server, _Server],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[PluginHost, _Server]:
    """A host whose plugin has credentials bound to the first server, in each scheme."""
    return _host(make_host, servers[0].base, monkeypatch, request.param), servers[0]


def test_no_content_coding_or_framing_reveals_the_secret(
    credentialed: tuple[PluginHost, _Server],
) -> None:
    host, bound = credentialed
    asks = [[], [["Accept-Encoding", "gzip"]], [["Accept-Encoding", "identity"]]]
    for coding in ["gzip", "deflate", "raw-deflate", "gzip,gzip", "deflate,gzip"]:
        for force in ["", "1"]:
            for framing in ["", "chunked"]:
                for headers in asks:
                    query = f"coding={coding}&force={force}&framing={framing}"
                    answer = _http(host, f"{bound.base}/echo?{query}", headers=headers)
                    case = f"{query} {headers}"
                    assert "ok" in answer, case
                    assert not _reveals_secret(answer), case
                    assert "***" in answer["ok"]["body"], case
                    names = {name for name, _ in answer["ok"]["headers"]}
                    assert "content-encoding" not in names, case  # decoded by the host
    # The host asked for what it decodes, whatever the plugin asked for.
    assert {dict(h).get("Accept-Encoding") for _, h in bound.seen} == {"gzip, deflate"}


def test_a_coding_the_host_cannot_decode_is_refused(
    make_host: HostFactory,
    servers: tuple[_Server, _Server],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bound = servers[0]
    host = _host(make_host, bound.base, monkeypatch)
    for coding in ["x-reverse", "gzip,x-reverse", "br", "br,gzip"]:
        answer = _http(host, f"{bound.base}/echo?coding={coding}&force=1")
        assert answer["error"] == "unavailable", coding
        assert "which the host does not decode" in answer["message"]
        assert not _reveals_secret(answer)
    answer = _http(host, f"{bound.base}/echo?framing=gzip-transfer")
    assert answer["error"] == "unavailable" and not _reveals_secret(answer)
    # The client's error quotes the malformed line: masked for the plugin and the audit log.
    answer = _http(host, f"{bound.base}/echo?bad-name=1")
    assert "illegal header line" in answer["message"] and not _reveals_secret(answer)
    audit = (tmp_path / "data" / "audit.log").read_text()
    assert "illegal header line" in audit
    assert not _reveals_secret({"audit": audit})


def test_a_compression_bomb_is_stopped_at_the_limit(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch, max_response_body="1MB")
    answer = _http(host, f"{servers[1].base}/bomb?n={64 << 20}")
    assert answer["error"] == "invalid-input"
    assert "exceeds 1 MiB decoded" in answer["message"]


# --- byte ranges -----------------------------------------------------------------------------


def test_byte_ranges_are_refused_where_credentials_go(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    bound, unbound = servers
    host = _host(make_host, bound.base, monkeypatch)
    for name in ["Range", "range", "If-Range"]:
        answer = _http(host, f"{bound.base}/echo", headers=[[name, "bytes=0-7"]])
        assert answer["error"] == "invalid-input"
        assert "a byte range could return a slice of them" in answer["message"]
    assert bound.seen == []  # refused before anything was sent
    # Nor through a redirect from a host without credentials to one with them.
    hop = f"{unbound.base}/redirect?to={bound.base}/echo"
    answer = _http(host, hop, headers=[["Range", "bytes=0-7"]])
    assert answer["error"] == "invalid-input" and bound.seen == []
    # A host without credentials still serves ranges.
    answer = _http(host, f"{unbound.base}/echo", headers=[["Range", "bytes=0-7"]])
    assert answer["ok"]["status"] == 206 and len(answer["ok"]["body"]) == 8


# --- echoes in other encodings ---------------------------------------------------------------


def test_no_echo_encoding_reveals_the_secret(credentialed: tuple[PluginHost, _Server]) -> None:
    host, bound = credentialed
    for form in FORMS:
        for pad in range(3):  # the three alignments of the secret inside base64 text
            answer = _http(host, f"{bound.base}/echo?form={form}&pad={pad}&coding=gzip")
            assert "ok" in answer, (form, pad)
            assert not _reveals_secret(answer), (form, pad)


@settings(max_examples=150, deadline=None)
@given(
    secret=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40),
    before=st.binary(max_size=12),
    after=st.binary(max_size=12),
    form=st.sampled_from(sorted(FORMS)),
)
def test_the_mask_hides_every_encoded_form(
    secret: str, before: bytes, after: bytes, form: str
) -> None:
    masked = SecretMask([secret]).apply(FORMS[form](before + secret.encode() + after))
    assert not any(secret.encode() in decoded for decoded in _decodings(masked))


# JSON as Jira sends it: "+" (a space's escape, for a secret with spaces) and "%" everywhere.
MARKED_NOISE = b'{"updated":"2026-01-05T10:00:00.000+0000","done":"5%","path":"a\\\\b"},' * 30


@settings(max_examples=100, deadline=None)
@given(
    secret=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=8, max_size=40),
    form=st.sampled_from(sorted(FORMS)),
    at=st.integers(min_value=0, max_value=len(MARKED_NOISE)),
)
def test_the_mask_finds_forms_among_many_escape_markers(secret: str, form: str, at: int) -> None:
    # The escaped forms are looked for only near markers: one anywhere in a long body full of
    # markers unrelated to the secret is still found.
    body = MARKED_NOISE[:at] + FORMS[form](secret.encode()) + MARKED_NOISE[at:]
    masked = SecretMask([secret, f"Basic {secret}"]).apply(body)
    assert not any(secret.encode() in decoded for decoded in _decodings(masked))


def test_the_mask_leaves_other_bytes_alone() -> None:
    mask = SecretMask([SECRET])
    text = b'{"id": 1, "note": "50% off", "path": "C:\\x", "blob": "aGVsbG8gd29ybGQ="}'
    assert mask.apply(text) is text
    assert mask.apply(b"a" + SECRET.encode() + b"b") == b"a***b"
    assert not SecretMask([])


# --- large bodies ----------------------------------------------------------------------------


def test_sixteen_mib_each_way_arrive_intact(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers[1]
    limit = f"{BIG}B"
    host = _host(
        make_host, servers[0].base, monkeypatch, max_request_body=limit, max_response_body=limit
    )
    expected = hashlib.sha256(PATTERN * (BIG // 256)).hexdigest()

    up = host.call("hostapi", "http.big", {"url": f"{server.base}/digest", "size": BIG})["ok"]
    assert dict(up["headers"])["x-size"] == str(BIG)
    assert dict(up["headers"])["x-sha256"] == expected

    down = host.call("hostapi", "http.big", {"url": f"{server.base}/bytes?n={BIG}"})["ok"]
    assert (down["size"], down["sha256"]) == (BIG, expected)


def test_reads_are_capped_per_chunk(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch)
    url = f"{servers[1].base}/bytes?n=200000"
    answer = host.call("hostapi", "http.raw", {"url": url, "max_bytes": 1 << 31})
    assert answer["ok"]["chunks"] == [READ_CHUNK] * 3 + [200000 - 3 * READ_CHUNK]
    answer = host.call("hostapi", "http.raw", {"url": url.replace("200000", "20")})
    assert answer["ok"]["chunks"] == [8, 8, 4]


def test_unread_bodies_are_bounded_before_anything_is_sent(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch)
    server = servers[1]
    url = f"{server.base}/bytes?n=1000"
    answer = host.call("hostapi", "http.hold", {"url": url, "n": MAX_HELD + 1})
    assert answer["error"] == "invalid-input"
    assert f"already holds {MAX_HELD} bodies" in answer["message"]
    assert len(server.seen) == MAX_HELD
    # They went with the call that held them.
    assert host.call("hostapi", "http.hold", {"url": url, "n": MAX_HELD})["ok"] == [1000] * 4


def test_body_handles() -> None:
    bodies = Bodies(max_request_bytes=10)
    request = bodies.new_request_body()
    bodies.write(request, b"12345")
    bodies.write(request, b"67890")
    with pytest.raises(InvalidInput, match="over the 10 B limit"):
        bodies.write(request, b"x")
    with pytest.raises(InvalidInput, match="is not a response body"):
        bodies.read(request, 10)
    assert bodies.take_request_body(request) == b"1234567890"
    with pytest.raises(InvalidInput, match="is not a request body"):
        bodies.take_request_body(request)  # sending consumed it

    response = bodies.add_response_body(b"abc")
    with pytest.raises(InvalidInput, match="is not a request body"):
        bodies.write(response, b"x")
    assert [bodies.read(response, 2), bodies.read(response, 2), bodies.read(response, 2)] == [
        b"ab",
        b"c",
        b"",
    ]
    with pytest.raises(InvalidInput, match="is not a response body"):
        bodies.read(12345, 1)

    # Bodies read to the end hold nothing and do not count; unread ones do.
    held = [bodies.add_response_body(b"x") for _ in range(MAX_HELD)]
    with pytest.raises(InvalidInput, match=f"already holds {MAX_HELD} bodies"):
        bodies.new_request_body()
    with pytest.raises(InvalidInput, match=f"already holds {MAX_HELD} bodies"):
        bodies.ensure_room()  # as `send` asks before it sends
    bodies.drop(held[0])
    bodies.drop(held[0])  # twice is harmless
    bodies.new_request_body()


def test_text_reads_end_on_whole_characters() -> None:
    bodies = Bodies(max_request_bytes=10)
    text = bodies.add_response_body("aé€".encode() + b"\xff" + b"z")
    # "é" is 2 bytes, "€" 3: a read never splits one, and stops before bytes that are not UTF-8.
    assert [bodies.read_text(text, 2), bodies.read_text(text, 4), bodies.read_text(text, 3)] == [
        "a",
        "é",
        "€",
    ]
    with pytest.raises(InvalidInput, match="not UTF-8 at byte 6; read it with read-body"):
        bodies.read_text(text, 100)
    assert bodies.read(text, 100) == b"\xff" + b"z"  # nothing was consumed
    assert bodies.read_text(text, 100) == ""
    small = bodies.add_response_body("€".encode())
    with pytest.raises(InvalidInput, match="max-bytes 2 is less than the next character"):
        bodies.read_text(small, 2)
    cut = bodies.add_response_body("€".encode()[:2])  # a body that ends inside a character
    with pytest.raises(InvalidInput, match="not UTF-8 at byte 0"):
        bodies.read_text(cut, 100)
    large = bodies.add_response_body(b"x" * (TEXT_CHUNK + 5))
    assert [len(bodies.read_text(large, 1 << 31)), len(bodies.read_text(large, 1 << 31))] == [
        TEXT_CHUNK,
        5,
    ]


def test_text_bodies_cross_as_strings_and_other_bytes_as_bytes(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch)
    url = f"{servers[1].base}/text?n=100"
    answer = host.call("hostapi", "http.text", {"url": url, "max_bytes": 51})["ok"]
    assert answer == {"pieces": [50, 50, 50, 50]}  # 51 bytes would split an "é"
    answer = host.call("hostapi", "http.text", {"url": url + "&tail=ff00"})["ok"]
    assert answer["pieces"] == [200]
    assert answer["then"]["error"] == "invalid-input"
    assert answer["rest"] == 2
    # The SDK reads what is UTF-8 as text and the rest as bytes, and joins them exactly.
    answer = host.call("hostapi", "http", {"url": url + "&tail=ff00", "raw": True})["ok"]
    assert base64.b64decode(answer["body_base64"]) == "é".encode() * 100 + b"\xff\x00"


def test_started_requests_travel_together_and_answer_as_send(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch)
    base = servers[1].base
    urls = [f"{base}/together?i={i}" for i in range(TOGETHER)]
    # The server answers only when all of them wait at once: sent one by one, each would
    # wait alone and get 504.
    answer = host.call("hostapi", "http.started", {"urls": urls})["ok"]
    assert answer == [[200, f"together {i}"] for i in reversed(range(TOGETHER))]
    # Errors come from `finish`, as `send` would raise them; a handle is finished once.
    refused = ["http://169.254.169.254/latest", f"{base}/text?n=1"]
    answer = host.call("hostapi", "http.started", {"urls": refused, "finish_again": True})["ok"]
    assert answer[0] == [200, "é"]
    assert answer[1]["error"] == "permission-denied"
    assert answer[2] == {
        "error": "invalid-input",
        "message": "finish: 2 is not one of the requests this call started",
    }


def test_started_requests_are_bounded_per_call(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch)
    url = f"{servers[1].base}/text?n=1"
    answer = host.call("hostapi", "http.started", {"urls": [url] * (MAX_STARTED + 1)})
    assert answer["error"] == "invalid-input"
    assert f"already has {MAX_STARTED} requests started" in answer["message"]
    # Left unfinished, they go with the call that started them.
    answer = host.call("hostapi", "http.started", {"urls": [url] * MAX_STARTED, "finish": 0})
    assert answer["ok"] == []
    answer = host.call("hostapi", "http.started", {"urls": [url] * MAX_STARTED})
    assert answer["ok"] == [[200, "é"]] * MAX_STARTED


# --- deadlines -------------------------------------------------------------------------------


def test_a_trickling_response_stops_at_the_request_timeout(
    make_host: HostFactory, servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(make_host, servers[0].base, monkeypatch)
    started = time.monotonic()
    # A byte every 0.5 s: a read given the request's whole timeout would end at 1.0 s.
    answer = _http(host, f"{servers[1].base}/drip?every=0.5", timeout_ms=700)
    elapsed = time.monotonic() - started
    assert answer["error"] == "timeout"
    assert 0.7 <= elapsed < 0.7 + 0.2


def test_a_trickling_response_stops_at_the_call_deadline(
    make_host: HostFactory, servers: tuple[_Server, _Server]
) -> None:
    settings = {
        "grant": GRANT,
        "http": {"allow_private_networks": ["127.0.0.0/8"]},
        "limits": {"execution_timeout": "1s"},
    }
    host = make_host("hostapi", plugins={"hostapi": settings})
    started = time.monotonic()
    try:
        answer = host.call("hostapi", "http", {"url": f"{servers[1].base}/drip?every=0.6"})
    except PluginTimeout:
        pass  # the guest ran on past its deadline after the host's answer
    else:
        assert answer["error"] == "timeout"
    assert time.monotonic() - started < 1 + 0.2


def test_sending_to_a_server_that_stops_reading_stops_at_the_timeout(
    servers: tuple[_Server, _Server], tmp_path: Path
) -> None:
    options = HttpOptions.model_validate(
        {"allow_private_networks": True, "max_request_body": f"{BIG}B"}
    )
    audit = AuditLog(tmp_path / "audit.log")
    client = OutboundHttp("x", build_policy(["http://127.0.0.1:*"], options, []), audit)
    started = time.monotonic()
    with pytest.raises(HostTimeout):
        client.send("POST", f"{servers[1].base}/never-read", body=bytes(BIG), timeout_s=0.7)
    assert time.monotonic() - started < 0.7 + 0.2
    client.close()
    audit.close()
