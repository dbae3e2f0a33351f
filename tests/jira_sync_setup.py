"""What the sync driver and CLI tests need to run the real jira-sync plugin against the Jira
emulator: a served emulator, and the operator's settings for the plugin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corral.testing.jira import EmulatorHandle, JiraEmulator, serve

PLUGIN = "jira-sync"
GRANTS = ["network.http.outbound", "config.read", "task.read", "task.write", "kv"]


@contextmanager
def running_jira(issues: int) -> Iterator[EmulatorHandle]:
    """An emulator with `issues` seeded issues in project DEMO, on a free loopback port."""
    emulator = JiraEmulator(issues=issues, seed=1)
    try:
        with serve(emulator) as handle:
            yield handle
    finally:
        emulator.close()


def jira_sync_settings(
    jira: EmulatorHandle, token_file: Path, *, timeout: str = "30s", **config: Any
) -> dict[str, Any]:
    """``plugins.jira-sync`` as an operator writes it: one allowlist line for the emulator, the
    first user's API token injected by the host from a file."""
    user = jira.users[0]
    token_file.write_text(user.api_token)
    return {
        "grant": GRANTS,
        "limits": {"execution_timeout": timeout},
        "config": {"base_url": jira.url, "project_key": "DEMO", **config},
        "http": {"allowed_hosts": [jira.url]},
        "credentials": [
            {
                "hosts": [jira.url],
                "scheme": "basic",
                "username": user.email,
                "secret": f"file:{token_file}",
            }
        ],
    }
