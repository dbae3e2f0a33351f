"""Jira's error answers: ``{"errorMessages": [...], "errors": {...}}`` with a status code."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from starlette.responses import Response

__all__ = ["JiraError", "error_response", "json_response", "raw_json_response"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class JiraError(Exception):
    """Raised by a handler to answer with Jira's error body."""

    def __init__(
        self,
        status: int,
        messages: Sequence[str] = (),
        errors: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(f"{status}: {'; '.join(messages) or dict(errors or {})}")
        self.status = status
        self.messages = list(messages)
        self.errors = dict(errors or {})
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return error_response(self.status, self.messages, self.errors, self.headers)


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    text = _encode(body)
    return raw_json_response(text, status, headers)


def raw_json_response(
    text: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A response whose body is already JSON text (cached issue JSON is joined, not re-encoded)."""
    return Response(
        text.encode("utf-8"),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json;charset=UTF-8",
    )


def error_response(
    status: int,
    messages: Sequence[str] = (),
    errors: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return json_response(
        {"errorMessages": list(messages), "errors": dict(errors or {})}, status, headers
    )
