"""pytest plugin: the `jira_emulator` fixture.

Enable it with ``pytest_plugins = ["corral.testing.jira.pytest_plugin"]`` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._emulator import JiraEmulator
from ._server import EmulatorHandle, serve


@pytest.fixture
def jira_emulator() -> Iterator[EmulatorHandle]:
    """A fresh, empty emulator (project DEMO, the two default users) on a free loopback port.

    Seed it through `handle.emulator.seed(n)`; for other settings build a `JiraEmulator` and
    use `serve()` directly.
    """
    emulator = JiraEmulator()
    try:
        with serve(emulator) as handle:
            yield handle
    finally:
        emulator.close()
