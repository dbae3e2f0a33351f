"""`SecretMask`: finds the operator's secrets in what a server sends back, and masks them.

A server that reflects its request (an echo endpoint, an error page quoting headers, a debug
route) can hand the plugin the credentials the host added. The host decodes content codings
itself and refuses byte ranges on credentialed requests (see `_client`), so the secret can
only come back whole; this module finds it in every form below and replaces it with ``***``:

- the raw bytes (UTF-8);
- percent-encoding, in any mix of escaped and literal characters, either hex case, ``+`` for a
  space; JSON string escapes (``\\u00XX``, ``\\/``);
- hex, lower or upper case;
- base64 and base64url, at each of the three alignments a secret can have inside a longer
  base64 text: the characters that depend only on the secret's bytes, plus the one character
  on each side that mixes its first or last bits with its neighbours'. This covers the
  ``Authorization: Basic base64(user:secret)`` header an echo server returns as it is.

What no mask can cover is a server that transforms the secret in some other way (reverses it,
hashes it, encrypts it, wraps base64 across lines, returns pieces of it chosen by the request):
bind credentials only to hosts that do not.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator

from ._secrets import MASK

__all__ = ["SecretMask"]

_MASK = MASK.encode()
_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
# A base64 core this short would match unrelated base64 text too often to be worth masking.
_MIN_BASE64_CORE = 8
_PLUS, _SPACE = ord("+"), ord(" ")


class SecretMask:
    """Masks every form of `secrets` (see the module docstring) in bytes or text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        literals: set[bytes] = set()
        cores: set[bytes] = set()
        for value in values:
            literals |= {value, value.hex().encode(), value.hex().upper().encode()}
            cores |= _base64_cores(value)
        self._literals = tuple(literals)
        self._base64_cores = tuple(cores)
        self._escaped = (
            re.compile(b"|".join(_escaped_pattern(value) for value in values)) if values else None
        )
        # A form with an escape in it holds one of these markers. The slow regex runs only
        # within reach of a marker: as far as the longest form (every byte as \u00XX) spans.
        spaced = [v for v in values if b" " in v]
        self._escape_markers = (b"%", b"\\") + ((b"+",) if spaced else ())
        self._reach = 6 * max((len(v) for v in values), default=0)
        self._after_plus = _first_bytes_after_space(spaced)

    def __bool__(self) -> bool:
        return self._escaped is not None

    def apply(self, data: bytes) -> bytes:
        """`data` with every form of every secret replaced by ``***``."""
        if self._escaped is None or not data:
            return data
        merged: list[list[int]] = []
        for start, end in sorted(self._spans(data)):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if not merged:
            return data
        out: list[bytes] = []
        done = 0
        for start, end in merged:
            out += (data[done:start], _MASK)
            done = end
        out.append(data[done:])
        return b"".join(out)

    def apply_text(self, text: str) -> str:
        """`apply` for text (header values), undecodable bytes replaced."""
        return self.apply(text.encode()).decode("utf-8", "replace")

    def _spans(self, data: bytes) -> Iterator[tuple[int, int]]:
        for literal in self._literals:
            yield from _find_all(data, literal)
        for core in self._base64_cores:
            for start, end in _find_all(data, core):
                # The neighbouring characters mix the secret's outer bits with other bytes.
                if start > 0 and data[start - 1] in _BASE64_CHARS:
                    start -= 1
                if end < len(data) and data[end] in _BASE64_CHARS:
                    end += 1
                yield start, end
        assert self._escaped is not None
        for start, end in self._escape_windows(data):
            for match in self._escaped.finditer(data, start, end):
                yield match.span()

    def _escape_windows(self, data: bytes) -> list[tuple[int, int]]:
        """The ranges of `data` where an escaped form can be: around each marker, merged.

        A form without escapes is a literal, found above; one with an escape lies within
        `_reach` bytes of that escape's marker. JSON full of ``+0000`` time zones (a marker
        when a secret holds a space) thus costs a few short scans, not one of the whole body.
        """
        windows: list[tuple[int, int]] = []
        for at in self._marker_positions(data):
            if data[at] == _PLUS and not self._may_follow_plus(data, at + 1):
                continue
            start, end = max(0, at - self._reach), at + 1 + self._reach
            if windows and start <= windows[-1][1]:
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
        return windows

    def _marker_positions(self, data: bytes) -> list[int]:
        # One `find` scan per marker byte: a regex alternation steps through a 200 KB body
        # byte by byte (0.5 ms), where `find` skips to the next marker (a few microseconds).
        positions: list[int] = []
        for marker in self._escape_markers:
            at = data.find(marker)
            while at != -1:
                positions.append(at)
                at = data.find(marker, at + 1)
        positions.sort()
        return positions

    def _may_follow_plus(self, data: bytes, at: int) -> bool:
        # A "+" escapes a space only if the secret's next byte (in some form) comes next.
        return self._after_plus is None or (at < len(data) and data[at] in self._after_plus)


def _first_bytes_after_space(values: list[bytes]) -> frozenset[int] | None:
    """The bytes that can follow a space of `values` in an escaped form: the next byte as it
    is or its escape's first byte; None when a space ends a value (anything may follow)."""
    found = {ord("%"), ord("\\")}
    for value in values:
        for at in (i for i, byte in enumerate(value) if byte == _SPACE):
            if at + 1 == len(value):
                return None
            following = value[at + 1]
            found |= {following, _PLUS} if following == _SPACE else {following}
    return frozenset(found)


def _find_all(data: bytes, needle: bytes) -> Iterator[tuple[int, int]]:
    start = data.find(needle)
    while start != -1:
        yield start, start + len(needle)
        start = data.find(needle, start + len(needle))


def _base64_cores(value: bytes) -> set[bytes]:
    """The base64 and base64url characters determined by `value` alone, for each offset
    (mod 3) it can start at inside a longer encoded text."""
    cores: set[bytes] = set()
    for offset in range(3):
        # Zero bytes around `value` stand for whatever surrounds it; only the characters
        # whose six bits all come from `value` are kept.
        encoded = base64.b64encode(bytes(offset) + value + bytes(2))
        first = -(-8 * offset // 6)
        end = 8 * (offset + len(value)) // 6
        core = encoded[first:end]
        if len(core) >= _MIN_BASE64_CORE:
            cores |= {core, core.translate(_TO_URLSAFE)}
    return cores


def _escaped_pattern(value: bytes) -> bytes:
    """A regex matching `value` with any of its bytes percent- or JSON-escaped."""
    return b"".join(_escaped_byte(byte) for byte in value)


def _escaped_byte(byte: int) -> bytes:
    hex_digits = b"%02x" % byte
    case_free = b"".join(b"[%s%s]" % (c, c.upper()) for c in (hex_digits[:1], hex_digits[1:]))
    forms = [re.escape(bytes([byte])), b"%" + case_free]
    if byte < 0x80:
        forms.append(rb"\\u00" + case_free)
    if byte == ord(" "):
        forms.append(rb"\+")
    if byte == ord("/"):
        forms.append(rb"\\/")
    return b"(?:" + b"|".join(forms) + b")"
