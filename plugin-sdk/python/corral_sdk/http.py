"""Outbound HTTP with `bytes` bodies, over the `http` import's chunked body handles.

    from corral_sdk import http

    response = http.send("POST", url, headers=[("Content-Type", "application/json")],
                         body=json.dumps(data).encode())
    if response.status == 200:
        items = response.json()

Errors from the host (not allowed, timeout, too large, ...) raise `Err` as every import does.
"""

import json

from wit_world.imports import http as _http

__all__ = ["Response", "send"]

# The host returns at most 64 KiB per read; writes of that size cost it little memory each.
_CHUNK = 64 << 10


class Response:
    """A response: `status`, `headers` (lower-case names) and the whole `body`.

    `body` is a `bytearray` (it supports everything `bytes` does but hashing): filled in place,
    so a large body takes its size once in the plugin's memory, not twice.
    """

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        """The first value of header `name` (any case), or `default`."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), default)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def send(method, url, headers=(), body=b"", timeout_ms=None):
    """Send a request through the host and return its `Response`, body read whole."""
    handle = None
    if body:
        handle = _http.new_body()
        for start in range(0, len(body), _CHUNK):
            _http.write_body(handle, bytes(body[start : start + _CHUNK]))
    request = _http.Request(
        method=method,
        url=url,
        headers=[(str(k), str(v)) for k, v in headers],
        body=handle,
        timeout_ms=timeout_ms,
    )
    response = _http.send(request)
    body = read_body(response.body, response.body_size)
    return Response(response.status, response.headers, body)


def read_body(handle, size=0):
    """The rest of response body `handle` as a `bytearray` (for code that calls `http.send`
    itself); `size`, the response's `body-size`, lets it be filled in place."""
    body = bytearray(size)
    filled = 0
    while True:
        chunk = _http.read_body(handle, _CHUNK)
        if not chunk:
            break
        body[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    _http.drop_body(handle)
    del body[filled:]
    return body
