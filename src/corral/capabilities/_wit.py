"""Building WIT values the way wasmtime-py's component API expects them."""

from __future__ import annotations

from typing import Any

from wasmtime.component import Record, Variant

from .._errors import HostApiError, RateLimited

__all__ = ["error_value", "record"]


def record(**fields: Any) -> Record:
    """A WIT record value: wasmtime-py reads fields as attributes named in kebab-case."""
    value = Record()
    for name, item in fields.items():
        setattr(value, name.replace("_", "-"), item)
    return value


def error_value(error: HostApiError) -> Variant:
    """The `plugin-error` value for a host-side error."""
    if isinstance(error, RateLimited):
        return Variant(
            "rate-limited", record(retry_after_ms=error.retry_after_ms, message=error.message)
        )
    return Variant(error.kind, error.message)
