"""Background loops that hand work to a thread pool, and stop within a grace period."""

from __future__ import annotations

import concurrent.futures
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["BackgroundLoop", "WorkerPool"]


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


class BackgroundLoop(ABC):
    """A thread running `_loop` until `stop`, handing work to `_pool`.

    `_loop` holds `_wake` while it decides, waits on it between rounds, and returns once
    `_stopping` is set; workers notify `_wake` when they finish.
    """

    def __init__(self, name: str, workers: int) -> None:
        self._pool = WorkerPool(workers, f"{name}-worker")
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Start no more work; wait up to `timeout` seconds for the work running."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.drain(timeout)

    @abstractmethod
    def _loop(self) -> None: ...
