"""`Pending`: the requests one call started with `start` and has not yet taken with `finish`.

A started request runs on a worker thread while the plugin works on (the guest runs without
the GIL, so a page is fetched while the previous one is stored). It is checked, limited and
audited exactly as `send`'s: only the exchange moves to the worker, in a copy of the caller's
context, so audit call ids and call watchers see it as the call's own. A request still pending
when its call ends runs to its end (by the call's deadline, like any request) and its answer
is dropped: nothing outlives the call but that one exchange.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from ..._errors import HostTimeout, InvalidInput
from ._client import HttpResponse

__all__ = ["MAX_PENDING", "Pending", "Workers"]

MAX_PENDING = 4
"""Requests one call may have started and not yet finished."""
_GRACE_S = 1.0
"""How long past the call's deadline `finish` waits for a worker: the exchange itself ends by
the deadline, so this only covers a worker that has not been scheduled yet."""


class Workers:
    """The threads one plugin's started requests run on (made on first use)."""

    def __init__(self, plugin: str) -> None:
        self._plugin = plugin
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, exchange: Callable[[], HttpResponse]) -> Future[HttpResponse]:
        if self._executor is None:
            # Calls of one plugin may run concurrently (serve), each with up to MAX_PENDING.
            self._executor = ThreadPoolExecutor(
                max_workers=2 * MAX_PENDING, thread_name_prefix=f"corral-http-{self._plugin}"
            )
        return self._executor.submit(contextvars.copy_context().run, exchange)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class Pending:
    """The started requests of one call, by handle."""

    def __init__(self, workers: Workers) -> None:
        self._workers = workers
        self._started: dict[int, Future[HttpResponse]] = {}
        self._next = 1

    def start(self, exchange: Callable[[], HttpResponse]) -> int:
        """Run `exchange` on a worker; returns its handle."""
        if len(self._started) >= MAX_PENDING:
            raise InvalidInput(
                f"this call already has {MAX_PENDING} requests started: finish one first"
            )
        handle = self._next
        self._next += 1
        self._started[handle] = self._workers.submit(exchange)
        return handle

    def finish(self, handle: int, remaining_s: float) -> HttpResponse:
        """Wait for request `handle` (at most `remaining_s`, the call's time left): its
        response, or the error `send` would have raised. The handle is gone afterwards."""
        future = self._started.pop(handle, None)
        if future is None:
            raise InvalidInput(f"finish: {handle} is not a started request of this call")
        try:
            return future.result(timeout=max(0.0, remaining_s) + _GRACE_S)
        except FutureTimeout:
            raise HostTimeout("the started request did not end by the call's deadline") from None
