"""`log`: structured logging from plugins, routed to Python logging under the plugin's name.

Always allowed. Bounded per plugin in rate (token bucket) and size, so a chatty or hostile
plugin cannot flood the host's logs; dropped lines are counted and reported once the rate
recovers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .. import _observe
from .._errors import ConfigError
from .._ratelimit import TokenBucket
from .._validation import validate_model
from ._base import CallContext, Capability, HostFunction, PluginContext

__all__ = ["LOG_LEVELS", "LogCapability", "LogOptions", "escape_controls", "plugin_logger"]

LOG_LEVELS = {  # the WIT levels as Python logging levels
    "trace": logging.DEBUG - 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


# Line breaks and terminal controls, which would let a plugin end its own log line and write
# what looks like another (a host line, say), or rewrite the line on a terminal. Tab is kept.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape_controls(text: str) -> str:
    """`text` with control characters and line breaks written as escapes (``\\n``, ``\\x1b``)."""
    return _CONTROLS.sub(lambda m: _NAMED.get(m[0]) or repr(m[0])[1:-1], text)


def plugin_logger(plugin: str) -> logging.Logger:
    """The logger a plugin's log lines and guest output go to."""
    return logging.getLogger(f"corral.plugin.{plugin}")


class LogOptions(BaseModel):
    """Operator options under ``plugins.<name>.log``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["trace", "debug", "info", "warn", "error"] = "trace"
    lines_per_second: float = 50.0
    burst: int = 200
    max_line_bytes: int = 4096
    max_fields: int = 32


@dataclass
class _LogState:
    logger: logging.Logger
    options: LogOptions
    bucket: TokenBucket
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _clip(text: str, limit: int) -> str:
    """`text` cut to `limit` bytes of UTF-8, with its controls escaped."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return escape_controls(text)
    kept = escape_controls(data[:limit].decode("utf-8", "ignore"))
    return kept + f"… ({len(data) - limit} bytes cut)"


def _line(message: str, fields: list[Any], options: LogOptions) -> tuple[str, str, dict[str, str]]:
    """A log line, clipped: its message, its text (message then ``key=value`` fields), fields."""
    limit = options.max_line_bytes
    extra = {
        _clip(str(key), 128): _clip(str(value), limit)
        for key, value in fields[: options.max_fields]
    }
    message = _clip(message, limit)
    text = " ".join([message, *(f"{k}={v}" for k, v in extra.items())])
    return message, text, extra


class LogCapability(Capability):
    name = "log"
    option_types: ClassVar[Mapping[str, Any]] = {"log": LogOptions}

    def configure(self, plugin: PluginContext) -> _LogState:
        options = validate_model(
            LogOptions, plugin.options.get("log") or {}, f"plugins.{plugin.name}.log", ConfigError
        )
        logger = plugin_logger(plugin.name)
        return _LogState(logger, options, TokenBucket(options.lines_per_second, options.burst))

    def host_functions(self, state: _LogState) -> list[HostFunction]:
        def log(call: CallContext, level: str, message: str, fields: list[Any]) -> None:
            if (watcher := _observe.watcher()) is not None:
                watcher.log_line(level, _line(message, fields, state.options)[1])
            number = LOG_LEVELS.get(level, logging.INFO)
            if number < LOG_LEVELS[state.options.level] or not state.logger.isEnabledFor(number):
                return
            if state.bucket.take() > 0:
                with state.lock:
                    state.dropped += 1
                return
            with state.lock:
                dropped, state.dropped = state.dropped, 0
            if dropped:
                state.logger.warning("dropped %d log lines over the rate limit", dropped)
            message, text, extra = _line(message, fields, state.options)
            # The message and fields apart too, for handlers that keep structure (corral.testing).
            structured = {"plugin": call.plugin, "plugin_message": message, "fields": extra}
            state.logger.log(number, "%s", text, extra=structured)

        return [HostFunction("log", log)]
