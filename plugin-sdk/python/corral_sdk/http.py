"""Outbound HTTP with `bytes` bodies, over the `http` import's chunked body handles.

    from corral_sdk import http

    response = http.send("POST", url, headers=[("Content-Type", "application/json")],
                         body=json.dumps(data).encode())
    if response.status == 200:
        items = response.json()

    # Fetch the next page while this one is stored:
    started = http.start("GET", next_url)
    store(page)
    page = started.result().json()

Errors from the host (not allowed, timeout, too large, ...) raise `Err` as every import does.
"""

import json

from wit_world.imports import http as _http

from .errors import Err, kind_of

__all__ = ["Response", "Started", "send", "start"]

# The host returns at most 64 KiB per read; writes of that size cost it little memory each.
_CHUNK = 64 << 10
# Text crosses as one string, up to 1 MiB per read.
_TEXT_CHUNK = 1 << 20


class Response:
    """A response: `status`, `headers` (lower-case names) and the whole body.

    A UTF-8 body is read as text (`read-body-text`: many times cheaper than bytes), so
    `text()` and `json()` cost no decoding; `body` is the bytes, as a `bytearray`.
    """

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self._body = body

    @property
    def body(self):
        if isinstance(self._body, str):
            self._body = bytearray(self._body, "utf-8")
        return self._body

    def header(self, name, default=None):
        """The first value of header `name` (any case), or `default`."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), default)

    def text(self):
        if isinstance(self._body, str):
            return self._body
        return self._body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self._body)


def send(method, url, headers=(), body=b"", timeout_ms=None):
    """Send a request through the host and return its `Response`, body read whole."""
    return _response(_http.send(_request(method, url, headers, body, timeout_ms)))


class Started:
    """A request `start` sent in the background; `result()` waits for its `Response`."""

    def __init__(self, handle):
        self._handle = handle

    def result(self):
        """The `Response` (once), or the error `send` would have raised."""
        return _response(_http.finish(self._handle))


def start(method, url, headers=(), body=b"", timeout_ms=None):
    """Send a request in the background and return a `Started` at once, to work while it
    travels (at most four per call at a time); `send` takes the same arguments."""
    return Started(_http.start(_request(method, url, headers, body, timeout_ms)))


def _request(method, url, headers, body, timeout_ms):
    handle = None
    if body:
        handle = _http.new_body()
        for begin in range(0, len(body), _CHUNK):
            _http.write_body(handle, bytes(body[begin : begin + _CHUNK]))
    return _http.Request(
        method=method,
        url=url,
        headers=[(str(k), str(v)) for k, v in headers],
        body=handle,
        timeout_ms=timeout_ms,
    )


def _response(response):
    return Response(response.status, response.headers, _read(response.body, response.body_size))


def _read(handle, size):
    """The rest of body `handle`: a `str` if it is UTF-8, else a `bytearray`."""
    parts = []
    try:
        while text := _http.read_body_text(handle, _TEXT_CHUNK):
            parts.append(text)
    except Err as exc:
        if kind_of(exc) != "invalid-input":
            raise
        # The UTF-8 part before the first byte that is not, then the rest as bytes.
        return _read_bytes(handle, size, "".join(parts).encode())
    _http.drop_body(handle)
    return "".join(parts)


def read_body(handle, size=0):
    """The rest of response body `handle` as a `bytearray` (for code that calls `http.send`
    itself); `size`, the response's `body-size`, lets it be filled in place."""
    return _read_bytes(handle, size, b"")


def _read_bytes(handle, size, head):
    body = bytearray(max(size, len(head)))
    body[: len(head)] = head
    filled = len(head)
    while True:
        chunk = _http.read_body(handle, _CHUNK)
        if not chunk:
            break
        body[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    _http.drop_body(handle)
    del body[filled:]
    return body
