"""A thread pool that can be drained within a grace period on shutdown."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["WorkerPool"]


class WorkerPool:
    """Runs tasks on up to `workers` threads; `drain` waits for the running ones, up to a time."""

    def __init__(self, workers: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        self._running: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        future = self._pool.submit(task)
        with self._lock:
            self._running.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._running.discard(future)

    def drain(self, timeout: float) -> bool:
        """Start nothing more; wait up to `timeout` seconds for what runs. True if all ended.

        Work cut off here is not lost: it was never marked done, so it runs again later.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._running)
        _, not_done = concurrent.futures.wait(running, timeout)
        return not not_done
