"""Parsers for the size and duration strings used in manifests and operator config."""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_duration", "parse_size"]

# Sizes are binary multiples whichever spelling is used: operators write "64MB" meaning 64 MiB,
# and a WebAssembly page is 64 KiB, so decimal megabytes would only produce surprising limits.
_SIZE_UNITS = {
    "B": 1,
    "KB": 1 << 10,
    "KIB": 1 << 10,
    "MB": 1 << 20,
    "MIB": 1 << 20,
    "GB": 1 << 30,
    "GIB": 1 << 30,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(\d+(?:\.\d+)?)"
_SIZE_RE = re.compile(rf"^\s*{_NUMBER}\s*([A-Za-z]+)\s*$")
_DURATION_RE = re.compile(rf"^\s*{_NUMBER}\s*(ms|s|m|h|d)\s*$")


def parse_size(text: str | int) -> int:
    """Parse ``"64MB"`` (units B, KB, MB, GB; KiB, MiB, GiB accepted) into bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"{text} is not a size: it is negative")
        return text
    match = _SIZE_RE.fullmatch(str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ValueError(f'"{text}" is not a size like "64MB"')
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def positive_size(text: str) -> str:
    """`text` if it is a size larger than zero (a pydantic validator for size options)."""
    if parse_size(text) <= 0:
        raise ValueError(f'"{text}" must be larger than zero')
    return text


def parse_duration(text: str | float) -> float:
    """Parse ``"30s"`` (units ms, s, m, h, d) into seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"{text} is not a duration: it is negative")
        return float(text)
    match = _DURATION_RE.fullmatch(str(text))
    if not match:
        raise ValueError(f'"{text}" is not a duration like "30s"')
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def format_size(size: int) -> str:
    """Render a byte count the way operators write it (``16 MiB``)."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"
