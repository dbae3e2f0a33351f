"""Linear memory sizes, read from the process's memory map (Linux).

wasmtime-py 50 gives no access to the core memories inside a component instance, and its store
limiter is a fixed cap with no callback. But Wasmtime lays every linear memory out the same way:
a reservation of address space (4 GiB on 64-bit hosts) that is inaccessible except for the
memory's current size at its start. So the accessible bytes at the start of each such
reservation in ``/proc/self/maps`` are the sizes of the process's linear memories. A linear
memory never shrinks, so its size at the end of a call is its peak.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["linear_memories"]

_MAPS = Path("/proc/self/maps")
# Wasmtime's default `memory_reservation` on 64-bit hosts; Corral's engine keeps the default.
_RESERVATION = 4 << 30


def linear_memories() -> dict[int, int] | None:
    """The size in bytes of each linear memory in this process, by its start address; None
    where the memory map cannot be read (not Linux)."""
    try:
        text = _MAPS.read_text()
    except OSError:
        return None
    areas: list[tuple[int, int, bool]] = []
    for line in text.splitlines():
        span, perms = line.split(maxsplit=2)[:2]
        start, end = (int(n, 16) for n in span.split("-"))
        areas.append((start, end, perms[:3] != "---"))
    memories: dict[int, int] = {}
    i = 0
    while i < len(areas):
        start, _, accessible = areas[i]
        if not accessible:
            i += 1
            continue
        # Contiguous accessible areas, then contiguous inaccessible ones: a linear memory if
        # the whole is as large as a reservation.
        j, size = i, 0
        while j < len(areas) and areas[j][2] and (j == i or areas[j][0] == areas[j - 1][1]):
            size += areas[j][1] - areas[j][0]
            j += 1
        end = areas[j - 1][1]
        while j < len(areas) and not areas[j][2] and areas[j][0] == end:
            end = areas[j][1]
            j += 1
        if end - start >= _RESERVATION:
            memories[start] = size
        i = j
    return memories
