"""What a plugin logged and printed, kept for a test to assert on."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from ..capabilities.log import LOG_LEVELS, plugin_logger

__all__ = ["LogCapture", "LogLine"]

_NAMES = {number: name for name, number in LOG_LEVELS.items()}


@dataclass(frozen=True)
class LogLine:
    """One line on the plugin's logger: the plugin's own (`log.log`), or the host's about it
    (e.g. dropped lines). `level` is the WIT level name (``trace`` ... ``error``)."""

    level: str
    message: str
    fields: dict[str, str] = field(default_factory=dict)


class LogCapture(logging.Handler):
    """Keeps every record of plugin `plugin`'s logger, at every level, until `close`."""

    def __init__(self, plugin: str) -> None:
        super().__init__(level=1)
        self.lines: list[LogLine] = []
        self.output: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._records_lock = threading.Lock()
        self._logger = plugin_logger(plugin)
        # The log capability asks the logger whether a level is enabled before it formats a
        # line, so the capture has to open every level, whatever the test's logging config.
        self._old_level = self._logger.level
        self._logger.setLevel(1)
        self._logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        stream, line = getattr(record, "stream", None), getattr(record, "line", None)
        with self._records_lock:
            if stream in self.output and isinstance(line, str):
                self.output[stream].append(line)
                return
            level = _NAMES.get(record.levelno, record.levelname.lower())
            message = getattr(record, "plugin_message", None)
            fields = getattr(record, "fields", None)
            self.lines.append(
                LogLine(
                    level,
                    message if isinstance(message, str) else record.getMessage(),
                    dict(fields) if isinstance(fields, dict) else {},
                )
            )

    def close(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._old_level)
        super().close()
