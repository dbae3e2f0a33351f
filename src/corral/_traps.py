"""Turning Wasmtime's errors into the most specific `PluginTrap`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from wasmtime import WasmtimeError

from ._errors import PluginFuelExhausted, PluginMemoryExceeded, PluginTimeout, PluginTrap
from ._units import format_size

if TYPE_CHECKING:
    from .runtime import PluginLimits

__all__ = ["trap_from"]

# What language runtimes print when an allocation fails: the guest then aborts, so the trap
# itself only says "unreachable".
_OUT_OF_MEMORY_MARKERS = (b"MemoryError", b"memory allocation of", b"out of memory")
_MINIMUM_MEMORY = re.compile(r"memory minimum size of (\d+) pages exceeds memory limits")
_WASM_PAGE = 64 << 10
_GUEST_ERROR_LINE = re.compile(rb"^[A-Za-z_][\w.]*(?:Error|Exception)\b.*$")


def trap_from(
    plugin: str, error: WasmtimeError, limits: PluginLimits, elapsed: float, stderr_tail: bytes
) -> PluginTrap:
    """Classify a Wasmtime error into the most specific `PluginTrap`."""
    text = str(error)
    head, _, rest = text.partition("\n")
    frames = [line.strip() for line in rest.splitlines() if line.strip()[:1].isdigit()]
    backtrace = "\n".join(frames[:8])
    cause = (
        text.rsplit("Caused by:", 1)[-1].strip().splitlines()[0] if "Caused by:" in text else head
    )
    lowered = text.lower()
    if "interrupt" in lowered:
        return PluginTimeout(
            plugin, "timeout", backtrace, f"ran past its {limits.timeout_s:g} s execution_timeout"
        )
    if "all fuel consumed" in lowered:
        return PluginFuelExhausted(
            plugin, "fuel exhausted", backtrace, f"used up its budget of {limits.fuel} fuel"
        )
    if start_too_big := _MINIMUM_MEMORY.search(text):
        needed = int(start_too_big.group(1)) * _WASM_PAGE
        return PluginMemoryExceeded(
            plugin,
            "memory limit",
            backtrace,
            f"needs {format_size(needed)} of linear memory to start; its memory_limit is "
            f"{format_size(limits.memory_bytes)}",
        )
    if any(marker in stderr_tail for marker in _OUT_OF_MEMORY_MARKERS):
        return PluginMemoryExceeded(
            plugin, "out of memory", backtrace, f"needed more than its {limits.memory_bytes} bytes"
        )
    trap = cause.removeprefix("error while executing at wasm backtrace:").strip()
    trap = trap.removeprefix("wasm trap: ") or "trap"
    guest_errors = [
        line.strip() for line in stderr_tail.splitlines() if _GUEST_ERROR_LINE.match(line.strip())
    ]
    detail = guest_errors[-1].decode("utf-8", "replace") if guest_errors else ""
    detail = detail or f"after {elapsed * 1000:.0f} ms"
    return PluginTrap(plugin, trap, backtrace, detail)
