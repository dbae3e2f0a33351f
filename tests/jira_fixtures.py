"""Emulators for the Jira test modules: served on a free loopback port, closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from corral.testing.jira import EmulatorHandle, JiraEmulator, serve


@contextmanager
def running(**options: Any) -> Iterator[EmulatorHandle]:
    """A `JiraEmulator(**options)` served over HTTP until the block ends."""
    emulator = JiraEmulator(**options)
    try:
        with serve(emulator) as handle:
            yield handle
    finally:
        emulator.close()


def api_client(jira: EmulatorHandle, user: int = 0, timeout: float = 10) -> httpx.Client:
    """A plain httpx client of `jira`'s REST API, as user number `user`."""
    return httpx.Client(base_url=jira.url, auth=jira.basic_auth(user), timeout=timeout)


def new_task(summary: str) -> dict[str, Any]:
    """The body of `POST /rest/api/3/issue` creating a Task called `summary` in DEMO."""
    return {
        "fields": {
            "project": {"key": "DEMO"},
            "summary": summary,
            "issuetype": {"name": "Task"},
        }
    }
