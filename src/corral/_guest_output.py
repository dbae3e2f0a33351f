"""Guest stdout and stderr: into the plugin's logger, line by line, bounded per call."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

from ._observe import CallWatcher
from .capabilities.log import escape_controls

__all__ = ["GuestOutput"]


class GuestOutput:
    """Guest stdout/stderr, line-buffered into the plugin's logger, bounded per call.

    The last few KiB of each call are kept whatever the limit, so a trap can be explained by
    what the guest printed just before it (a Python traceback, an allocator's complaint).
    """

    _TAIL = 4096

    def __init__(self, logger: logging.Logger, stream: str, limit: int) -> None:
        self._logger = logger
        self.stream = stream
        self._limit = limit
        self._buffer = b""
        self._written = 0
        self._dropped = 0
        self.tail = b""
        self._released = threading.Event()
        self.watcher: CallWatcher | None = None
        """The watcher of the call in progress, if it has one (`_observe.watch_call`)."""

    def sink(self) -> Callable[[bytes], None]:
        """The callback to give Wasmtime for this stream (`WasiConfig.stdout_custom`).

        Wasmtime calls it from its own I/O threads, and releases it when the last of them is
        done with the stream, which can be after the store was closed; `wait_released` waits
        for that.
        """

        def write(data: bytes) -> None:
            self.write(data)

        weakref.finalize(write, self._released.set)
        return write

    def wait_released(self, timeout: float) -> bool:
        """Wait until Wasmtime has released this stream's sink: no call into it can follow.

        A Wasmtime thread that calls into Python while the interpreter exits aborts the whole
        process, so stores are closed and their streams waited for before then.
        """
        return self._released.wait(timeout)

    def write(self, data: bytes) -> None:
        self.tail = (self.tail + data)[-self._TAIL :]
        room = self._limit - self._written
        if room <= 0:
            self._dropped += len(data)
            return
        accepted = data[:room]
        self._dropped += len(data) - len(accepted)
        self._written += len(accepted)
        self._buffer += accepted
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._emit(line)

    def _emit(self, line: bytes) -> None:
        text = escape_controls(line.decode("utf-8", "replace"))
        self._logger.info("[%s] %s", self.stream, text, extra={"stream": self.stream, "line": text})
        if self.watcher is not None:
            self.watcher.output(self.stream, text)

    def end_call(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = b""
        if self._dropped:
            self._logger.warning(
                "[%s] %d bytes of output dropped over the %d-byte limit per call",
                self.stream,
                self._dropped,
                self._limit,
            )
        self._written = self._dropped = 0
        self.tail = b""
