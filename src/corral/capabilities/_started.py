"""Work a call starts on a host thread and takes the result of later (`start`/`finish` pairs).

A guest runs without the GIL, so host work on a worker thread runs beside it: the http
capability sends a request while the plugin works on, the tasks capability writes a batch
while the plugin maps the next one. Work is checked and limited when it is started, exactly as
its synchronous twin would be; only the doing moves to the worker, in a copy of the caller's
context, so audit call ids and call watchers see it as the call's own. Errors come from
`finish`, as the synchronous twin would have raised them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

from .._errors import HostTimeout, InvalidInput

__all__ = ["Started", "Workers"]

T = TypeVar("T")

_GRACE_S = 1.0
"""How long past the call's deadline `finish` waits: the work itself ends by the deadline, so
this only covers a worker not yet scheduled."""


class Workers:
    """The threads one plugin's started work runs on (made on first use). One worker runs its
    work in the order it was started."""

    def __init__(self, name: str, max_workers: int) -> None:
        self._name = name
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, work: Callable[[], T]) -> Future[T]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix=self._name
            )
        return self._executor.submit(contextvars.copy_context().run, work)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class Started(Generic[T]):
    """The work one call started and has not finished, by handle; `what` names it in
    messages ("requests")."""

    def __init__(self, workers: Workers, limit: int, what: str) -> None:
        self._workers = workers
        self._limit = limit
        self._what = what
        self._started: dict[int, Future[T]] = {}
        self._next = 1

    def start(self, work: Callable[[], T]) -> int:
        """Run `work` on a worker; returns its handle."""
        if len(self._started) >= self._limit:
            raise InvalidInput(
                f"this call already has {self._limit} {self._what} started: finish one first"
            )
        handle = self._next
        self._next += 1
        self._started[handle] = self._workers.submit(work)
        return handle

    def finish(self, handle: int, remaining_s: float, where: str) -> T:
        """Wait for `handle` (at most `remaining_s`, the call's time left): its result, or the
        error the work raised. The handle is gone afterwards."""
        future = self._started.pop(handle, None)
        if future is None:
            raise InvalidInput(
                f"{where}: {handle} is not one of the {self._what} this call started"
            )
        return self._result(future, remaining_s)

    def wait_all(self, remaining_s: float) -> None:
        """Wait for every unfinished handle, dropping results and errors (the call is ending)."""
        for future in self._started.values():
            with contextlib.suppress(Exception):  # nobody is left to take them
                self._result(future, remaining_s)
        self._started.clear()

    def _result(self, future: Future[T], remaining_s: float) -> T:
        try:
            return future.result(timeout=max(0.0, remaining_s) + _GRACE_S)
        except FutureTimeout:
            raise HostTimeout(
                f"the started {self._what} did not end by the call's deadline"
            ) from None
