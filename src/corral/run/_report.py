"""`RunReport`: one call's result next to what it used, each figure against its limit."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._errors import (
    CorralError,
    PluginError,
    PluginFuelExhausted,
    PluginMemoryExceeded,
    PluginTimeout,
    PluginTrap,
)
from .._observe import HostCall
from .._units import format_size
from ._recorder import CallRecorder

__all__ = ["RunLimits", "RunReport"]


@dataclass(frozen=True)
class RunLimits:
    """The limits the call ran under."""

    timeout_s: float
    memory_bytes: int
    """Per linear memory: Wasmtime's store limit applies to each memory on its own."""
    fuel: int | None
    http_requests: int
    """Outbound HTTP requests per call."""
    output_bytes: int
    """Guest output kept per stream and call; the rest is dropped."""
    log_burst: int
    log_lines_per_second: float
    """Log lines pass at once up to `log_burst`, then at this rate; the rest are dropped."""


@dataclass(frozen=True)
class _FunctionUse:
    function: str
    calls: int
    seconds: float
    errors: dict[str, int]


@dataclass
class RunReport:
    """What `run_plugin` found: the call's result or error, and what the call used."""

    plugin: str
    command: str
    bundle_dir: Path
    build_s: float | None
    """How long building (or finding the cached build) took; None when given a bundle."""
    built_now: bool
    """Whether the source was built for this run (False: the cached build was up to date)."""
    load_s: float
    compiled_from_cache: bool
    data_dir: Path
    data_dir_kept: bool
    limits: RunLimits
    requested_permissions: frozenset[str]
    recorder: CallRecorder
    memory_before: dict[int, int] | None
    """Linear memory sizes before the call (the instance made at load), by address."""
    wall_s: float = 0.0
    result: Any = None
    error: CorralError | None = None

    # -- figures ---------------------------------------------------------------------------

    @property
    def limit_hit(self) -> str | None:
        """The limit a trap hit (``execution_timeout``, ``memory_limit``, ``fuel``), if any."""
        for kind, name in (
            (PluginTimeout, "execution_timeout"),
            (PluginMemoryExceeded, "memory_limit"),
            (PluginFuelExhausted, "fuel"),
        ):
            if isinstance(self.error, kind):
                return name
        return None

    def _functions(self) -> list[_FunctionUse]:
        calls: dict[str, list[HostCall]] = {}
        for call in self.recorder.host_calls:
            calls.setdefault(call.function, []).append(call)
        return [
            _FunctionUse(
                function,
                len(made),
                sum(c.seconds for c in made),
                dict(Counter(c.error for c in made if c.error is not None)),
            )
            for function, made in sorted(calls.items())
        ]

    def _denied(self) -> dict[str, str]:
        """Each permission the plugin was refused, with the fix."""
        fixes: dict[str, str] = {}
        for call in self.recorder.host_calls:
            if call.permission is None or call.permission in fixes:
                continue
            fix = f"run again with --grant {call.permission}"
            if call.permission not in self.requested_permissions:
                fix = f"add {call.permission} to security.permissions in manifest.yaml, and " + fix
            fixes[call.permission] = f"{call.function} needs {call.permission}: {fix}"
        return fixes

    def _output_bytes(self) -> dict[str, int]:
        sizes = {"stdout": 0, "stderr": 0}
        for line in self.recorder.lines:
            if line.source in sizes:
                sizes[line.source] += len(line.text.encode()) + 1
        return sizes

    # -- JSON ------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        """The result (or error) and the report, as one JSON-able document."""
        limits = self.limits
        memories = self.recorder.memories
        error: dict[str, Any] | None = None
        if self.error is not None:
            error = {"type": type(self.error).__name__, "message": str(self.error)}
            if isinstance(self.error, PluginError):
                error["kind"] = self.error.kind
            if isinstance(self.error, PluginTrap):
                error["trap"] = self.error.trap
                error["limit_hit"] = self.limit_hit
        return {
            "plugin": self.plugin,
            "command": self.command,
            "result": self.result,
            "error": error,
            "report": {
                "bundle": str(self.bundle_dir),
                "build_s": self.build_s,
                "built_now": self.built_now,
                "load_s": self.load_s,
                "compiled_from_cache": self.compiled_from_cache,
                "data_dir": str(self.data_dir),
                "data_dir_kept": self.data_dir_kept,
                "wall_s": self.wall_s,
                "timeout_s": limits.timeout_s,
                "fuel_consumed": self.recorder.fuel_consumed,
                "fuel_limit": limits.fuel,
                "linear_memory_bytes": None if memories is None else sorted(memories.values()),
                "linear_memory_before_bytes": (
                    None if self.memory_before is None else sorted(self.memory_before.values())
                ),
                "memory_limit_bytes": limits.memory_bytes,
                "host_calls": [
                    {
                        "function": use.function,
                        "calls": use.calls,
                        "seconds": use.seconds,
                        "errors": use.errors,
                    }
                    for use in self._functions()
                ],
                "permissions_denied": self._denied(),
                "http_requests": [asdict(request) for request in self.recorder.http_requests],
                "http_requests_limit": limits.http_requests,
                "output": [asdict(line) for line in self.recorder.lines],
                "output_bytes": self._output_bytes(),
                "output_limit_bytes": limits.output_bytes,
                "log_burst": limits.log_burst,
                "log_lines_per_second": limits.log_lines_per_second,
            },
        }

    # -- text ------------------------------------------------------------------------------

    def render(self) -> str:
        """The report for a person: a figure a line, each against its limit, then details."""
        limits = self.limits
        verdict = "ok" if self.error is None else f"error: {self.error}"
        if self.limit_hit is not None:
            verdict = f"hit its {self.limit_hit}: {self.error}"
        lines = [f"{self.plugin} {self.command}: {verdict}"]

        def row(name: str, value: str, limit: str) -> None:
            lines.append(f"  {name:<14} {value:<26} {limit}".rstrip())

        row("wall time", _ms(self.wall_s), _share(self.wall_s, limits.timeout_s, "s"))
        fuel = self.recorder.fuel_consumed
        row(
            "fuel",
            "-" if fuel is None else f"{fuel:,}",
            "not metered: no fuel limit"
            if limits.fuel is None
            else _share(fuel or 0, limits.fuel, ""),
        )
        row(*self._memory_row())
        functions = self._functions()
        calls = sum(use.calls for use in functions)
        row("host calls", str(calls), f"in {_ms(sum(use.seconds for use in functions))}")
        for use in functions:
            errors = ", ".join(f"{n} {kind}" for kind, n in use.errors.items())
            lines.append(
                f"    {use.function:<22} {use.calls:>5} {_ms(use.seconds):>10}"
                + (f"  ({errors})" if errors else "")
            )
        lines += [f"  permission denied: {fix}" for fix in self._denied().values()]
        requests = self.recorder.http_requests
        row(
            "http requests",
            str(len(requests)),
            _share(len(requests), limits.http_requests, " a call"),
        )
        for request in requests:
            status = request.status if request.status is not None else request.decision
            line = (
                f"    {request.method} {request.url} -> {status}, "
                f"{format_size(request.bytes_out)} out, {format_size(request.bytes_in)} in, "
                f"{_ms(request.seconds)}"
            )
            lines.append(line + (f" ({request.reason})" if request.reason else ""))
        sizes = self._output_bytes()
        row(
            "guest output",
            ", ".join(f"{format_size(n)} {stream}" for stream, n in sizes.items()),
            _share(max(sizes.values()), limits.output_bytes, "B") + " a stream",
        )
        logged = [out for out in self.recorder.lines if out.source not in sizes]
        rate = f"{limits.log_lines_per_second:g} a second after a burst of {limits.log_burst}"
        row("log lines", str(len(logged)), f"{_share(len(logged), limits.log_burst, '')}; {rate}")
        lines += [f"    [{out.source}] {out.text}" for out in self.recorder.lines]
        if self.build_s is None:
            built = "given as a bundle"
        elif self.built_now:
            built = f"built in {_ms(self.build_s)}"
        else:
            built = f"build up to date (checked in {_ms(self.build_s)})"
        compiled = "compiled component from cache" if self.compiled_from_cache else "compiled now"
        lines.append(f"  bundle {self.bundle_dir}")
        lines.append(f"    {built}; loaded in {_ms(self.load_s)}, {compiled}")
        kept = "kept" if self.data_dir_kept else "removed after the run; --data-dir keeps one"
        lines.append(f"  data dir {self.data_dir} ({kept})")
        return "\n".join(lines)

    def _memory_row(self) -> tuple[str, str, str]:
        memories = self.recorder.memories
        if not memories:
            return ("linear memory", "not measured", "(needs /proc/self/maps)")
        largest = max(memories.values())
        before = sum((self.memory_before or {}).values())
        grown = sum(memories.values()) - before
        count = len(memories)
        value = f"{format_size(largest)}" + (f" (largest of {count})" if count > 1 else "")
        limit = _share(largest, self.limits.memory_bytes, "B")
        return ("linear memory", value, f"{limit}; +{format_size(max(grown, 0))} in this call")


def _ms(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _share(value: float, limit: float, unit: str) -> str:
    """``41% of 30 s``: how close `value` came to `limit`."""
    if unit == "s":
        shown = f"{limit:g} s"
    elif unit == "B":
        shown = format_size(int(limit))
    else:
        shown = f"{limit:,g}{unit}"
    percent = 100 * value / limit if limit else 0.0
    return f"{percent:.0f}% of {shown}" if percent >= 1 or value == 0 else f"<1% of {shown}"
