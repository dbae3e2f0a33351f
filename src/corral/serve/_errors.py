"""Corral's exceptions as HTTP answers: the same cases the CLI tells apart by exit code.

Every error body is ``{"error": {"kind": ..., "message": ...}}`` (traps add ``"trap"``):

| exception | status | kind |
| --- | --- | --- |
| bad request body | 400 | ``bad-request`` |
| missing or wrong bearer token | 401 | ``unauthorized`` |
| `PluginNotFound` | 404 | ``plugin-not-found`` |
| `PluginUnavailable` (failed, disabled, compiling, circuit open) | 503 | ``plugin-unavailable`` |
| `PluginError` | by its kind, below | the plugin's kind (``invalid-input``, ...) |
| `PluginTimeout` | 504 | ``timeout`` |
| `PluginMemoryExceeded` | 500 | ``memory-exceeded`` |
| `PluginFuelExhausted` | 500 | ``fuel-exhausted`` |
| any other `PluginTrap` | 500 | ``trap`` |
| anything else | 500 | ``internal`` |

A plugin's error kinds map to invalid-input 422, not-found 404, permission-denied 403, conflict
409, rate-limited 429, timeout 504, unavailable 503, anything else 500. ``Retry-After`` is set
where the error says when to retry.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from .._errors import (
    CorralError,
    PluginError,
    PluginFuelExhausted,
    PluginMemoryExceeded,
    PluginNotFound,
    PluginTimeout,
    PluginTrap,
    PluginUnavailable,
    describe_failure,
)

__all__ = ["error_kind", "error_response", "http_error"]

_PLUGIN_ERROR_STATUS = {
    "invalid-input": 422,
    "not-found": 404,
    "permission-denied": 403,
    "conflict": 409,
    "rate-limited": 429,
    "timeout": 504,
    "unavailable": 503,
}


def error_kind(error: BaseException) -> str:
    """The ``kind`` an error is reported (and counted in metrics) as."""
    if isinstance(error, PluginError):
        return error.kind
    if isinstance(error, PluginTimeout):
        return "timeout"
    if isinstance(error, PluginMemoryExceeded):
        return "memory-exceeded"
    if isinstance(error, PluginFuelExhausted):
        return "fuel-exhausted"
    if isinstance(error, PluginTrap):
        return "trap"
    if isinstance(error, PluginNotFound):
        return "plugin-not-found"
    if isinstance(error, PluginUnavailable):
        return "plugin-unavailable"
    return "internal"


def _status(error: BaseException) -> int:
    if isinstance(error, PluginError):
        return _PLUGIN_ERROR_STATUS.get(error.kind, 500)
    if isinstance(error, PluginTimeout):
        return 504
    if isinstance(error, PluginNotFound):
        return 404
    if isinstance(error, PluginUnavailable):
        return 503
    return 500


def http_error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The documented error body."""
    return JSONResponse({"error": {"kind": kind, "message": message}}, status, headers)


def error_response(error: Exception) -> JSONResponse:
    """The answer for an exception raised by a plugin call."""
    message = str(error) if isinstance(error, CorralError) else describe_failure(error)
    body: dict[str, Any] = {"kind": error_kind(error), "message": message}
    if isinstance(error, PluginTrap):
        body["trap"] = error.trap
    headers: dict[str, str] = {}
    retry_after_ms = getattr(error, "retry_after_ms", None)
    retry_after_s = getattr(error, "retry_after_s", None)
    if isinstance(retry_after_ms, int) and retry_after_ms > 0:
        headers["Retry-After"] = str(math.ceil(retry_after_ms / 1000))
    elif isinstance(retry_after_s, int | float) and retry_after_s > 0:
        headers["Retry-After"] = str(math.ceil(retry_after_s))
    return JSONResponse({"error": body}, _status(error), headers)
