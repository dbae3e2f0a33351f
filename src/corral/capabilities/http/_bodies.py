"""`Bodies`: the request and response bodies one call holds, by handle.

Bodies stay in the host and cross the component boundary in chunks. Wasmtime's C API holds a
`list<u8>` as one 32-byte generic value per byte (and Wasmtime another while it lifts or lowers
the list), so a 16 MiB body passed whole cost the host over a gigabyte; a chunk of `READ_CHUNK`
bytes costs a few MiB. Chunks the plugin writes are its choice, but Wasmtime's hostcall fuel
(128 MiB of lifted values per call, not settable through the C API) traps a call that would
lift more than about 2.5 MiB of `list<u8>`, so one write costs the host at most about 210 MiB,
for an instant. Handles live only as long as the call that made them, so nothing a plugin
forgets to drop outlives its call; at most `MAX_HELD` bodies hold bytes at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from ..._errors import InvalidInput
from ..._units import format_size

__all__ = ["MAX_HELD", "READ_CHUNK", "TEXT_CHUNK", "Bodies"]

READ_CHUNK = 64 << 10
"""The most bytes one `read-body` returns."""
TEXT_CHUNK = 1 << 20
"""The most bytes one `read-body-text` returns: a string crosses as one copy, so a chunk can
be large (and a body of a few pages crosses in one call)."""
MAX_HELD = 4
"""Bodies one call may hold bytes in at once (being written, or not yet read to the end)."""


@dataclass
class _Outgoing:
    data: bytearray = field(default_factory=bytearray)


@dataclass
class _Incoming:
    data: bytes
    position: int = 0


_Body = TypeVar("_Body", _Outgoing, _Incoming)


class Bodies:
    """The bodies of one call; request bodies up to `max_request_bytes` each."""

    def __init__(self, max_request_bytes: int) -> None:
        self._max_request_bytes = max_request_bytes
        self._bodies: dict[int, _Outgoing | _Incoming] = {}
        self._next = 1

    def new_request_body(self) -> int:
        """A handle to a new, empty request body."""
        return self._add(_Outgoing())

    def write(self, handle: int, chunk: bytes) -> None:
        """Append `chunk` to request body `handle`."""
        body = self._get(handle, _Outgoing, "write-body")
        size = len(body.data) + len(chunk)
        if size > self._max_request_bytes:
            raise InvalidInput(
                f"the request body is over the {format_size(self._max_request_bytes)} limit "
                f"({size} bytes written)"
            )
        body.data += chunk

    def take_request_body(self, handle: int) -> bytearray:
        """Request body `handle`'s bytes; the handle is gone afterwards (sending consumes it)."""
        body = self._get(handle, _Outgoing, "send")
        del self._bodies[handle]
        return body.data

    def add_response_body(self, data: bytes) -> int:
        """A handle to read `data` from."""
        return self._add(_Incoming(data))

    def read(self, handle: int, max_bytes: int) -> bytes:
        """Up to `max_bytes` (and `READ_CHUNK`) more bytes of response body `handle`; b"" at
        the end."""
        body = self._get(handle, _Incoming, "read-body")
        end = body.position + min(max_bytes, READ_CHUNK)
        chunk = body.data[body.position : end]
        body.position += len(chunk)
        if body.position >= len(body.data):
            body.data, body.position = b"", 0  # read to the end: free it, keep the handle
        return chunk

    def read_text(self, handle: int, max_bytes: int) -> str:
        """Up to `max_bytes` (and `TEXT_CHUNK`) more bytes of response body `handle` as text,
        ending on a whole UTF-8 character; "" at the end. Bytes that are not UTF-8 raise
        `InvalidInput` once they are next, with nothing consumed."""
        body = self._get(handle, _Incoming, "read-body-text")
        start = body.position
        chunk = body.data[start : start + min(max_bytes, TEXT_CHUNK)]
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            cut_character = exc.reason == "unexpected end of data"
            if exc.start == 0:
                if cut_character and start + len(chunk) < len(body.data):
                    raise InvalidInput(
                        f"read-body-text: max-bytes {max_bytes} is less than the next character"
                    ) from None
                raise InvalidInput(
                    f"read-body-text: the response body is not UTF-8 at byte {start}; "
                    "read it with read-body"
                ) from None
            # The text before: a character cut by the chunk's end (or bytes that are not
            # UTF-8) come next time.
            text = chunk[: exc.start].decode("utf-8")
            chunk = chunk[: exc.start]
        body.position += len(chunk)
        if body.position >= len(body.data):
            body.data, body.position = b"", 0
        return text

    def drop(self, handle: int) -> None:
        """Forget `handle` (unknown handles are ignored: dropping twice is harmless)."""
        self._bodies.pop(handle, None)

    def ensure_room(self) -> None:
        """Raise `InvalidInput` unless one more body may hold bytes (checked before sending a
        request, so that its response is not refused after the server acted on it)."""
        held = sum(1 for b in self._bodies.values() if isinstance(b, _Outgoing) or b.data)
        if held >= MAX_HELD:
            raise InvalidInput(
                f"this call already holds {MAX_HELD} bodies: read them to the end or drop them"
            )

    def _add(self, body: _Outgoing | _Incoming) -> int:
        self.ensure_room()
        handle = self._next
        self._next += 1
        self._bodies[handle] = body
        return handle

    def _get(self, handle: int, kind: type[_Body], where: str) -> _Body:
        body = self._bodies.get(handle)
        if not isinstance(body, kind):
            what = "request" if kind is _Outgoing else "response"
            raise InvalidInput(f"{where}: {handle} is not a {what} body of this call")
        return body
