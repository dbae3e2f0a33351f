"""`CallRecorder`: what one call did, as the host's call watcher hooks tell it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .._observe import HostCall, HttpRequest
from ._memory import linear_memories

__all__ = ["CallRecorder", "Output"]


@dataclass(frozen=True)
class Output:
    """A line the plugin logged (`source` is its level) or wrote (``stdout``, ``stderr``)."""

    source: str
    text: str


@dataclass
class CallRecorder:
    """Collects what the calls made in one context did (an `_observe.CallWatcher`).

    Linear memories that existed before the recorder did (`baseline`) are left out of its
    memory figures, so they are those of the host made after it.
    """

    baseline: frozenset[int] = field(default_factory=lambda: frozenset(linear_memories() or ()))
    host_calls: list[HostCall] = field(default_factory=list)
    http_requests: list[HttpRequest] = field(default_factory=list)
    lines: list[Output] = field(default_factory=list)
    fuel_consumed: int | None = None
    memories: dict[int, int] | None = None
    """The size of each linear memory when the call ended, by address; None if not measured."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def memory_now(self) -> dict[int, int] | None:
        """The size of each linear memory made since the recorder, by address."""
        found = linear_memories()
        if found is None:
            return None
        return {start: size for start, size in found.items() if start not in self.baseline}

    def host_call(self, call: HostCall) -> None:
        self.host_calls.append(call)

    def http_request(self, request: HttpRequest) -> None:
        self.http_requests.append(request)

    def log_line(self, level: str, text: str) -> None:
        with self._lock:
            self.lines.append(Output(level, text))

    def output(self, stream: str, line: str) -> None:
        # Wasmtime's output threads call this, concurrently with the calling thread's log lines.
        with self._lock:
            self.lines.append(Output(stream, line))

    def call_ended(self, fuel_consumed: int | None) -> None:
        # Measured now: the store of a call that trapped closes right after this returns.
        self.fuel_consumed = fuel_consumed
        self.memories = self.memory_now()
