"""Every REST request the emulator received, for tests that assert what a client sent."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response

from ._model import ApiCall

__all__ = ["DEFAULT_REQUEST_LOG_SIZE", "RequestLog", "call_to_json"]

#: Enough for any test; bounded so a long benchmark or demo does not grow without end.
DEFAULT_REQUEST_LOG_SIZE = 100_000


class RequestLog:
    """The last `size` requests to `/rest/...`, oldest first (a `RequestHook`).

    It records a request when it arrives, so requests that a fault refused (429, 503) or whose
    connection was dropped are logged too; `ApiCall.status` is filled in once answered.
    """

    def __init__(self, size: int = DEFAULT_REQUEST_LOG_SIZE) -> None:
        self._calls: deque[ApiCall] = deque(maxlen=size)
        self._lock = threading.Lock()

    def calls(self) -> list[ApiCall]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    async def before(self, call: ApiCall) -> Response | None:
        with self._lock:
            self._calls.append(call)
        return None

    async def after(self, call: ApiCall, response: Response) -> Response | None:
        return None


def call_to_json(call: ApiCall) -> dict[str, Any]:
    """`call` as the admin API lists it: the body parsed when it is JSON, else as text."""
    text = call.body.decode("utf-8", errors="replace")
    body: Any = text
    if text:
        with contextlib.suppress(ValueError):
            body = json.loads(text)
    return {
        "method": call.method,
        "path": call.path,
        "query": dict(parse_qsl(call.query, keep_blank_values=True)),
        "rawQuery": call.query,
        "body": body if text else None,
        "user": None if call.user is None else call.user.email,
        "accountId": None if call.user is None else call.user.account_id,
        "status": call.status,
        "receivedAt": call.received_at.isoformat(),
    }
