"""jira-sync as its author tests it with `corral.testing`: configured as for Jira Cloud, with the
emulator's ASGI app standing in for ``https://acme.atlassian.net``, no socket involved."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from conftest import PLUGIN_SOURCES
from corral import PluginError
from corral.testing import PluginHarness
from corral.testing.jira import JiraEmulator
from jira_sync_setup import all_tasks

SITE = "https://acme.atlassian.net"


@pytest.fixture
def jira() -> Iterator[JiraEmulator]:
    emulator = JiraEmulator(issues=6, seed=1, base_url=SITE)
    yield emulator
    emulator.close()


MakeJiraSync = Callable[..., PluginHarness]


@pytest.fixture
def jira_sync(
    corral_plugin: Callable[..., PluginHarness],
    jira: JiraEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> MakeJiraSync:
    """`jira_sync(credential_hosts=(SITE,), **config)`: the plugin, configured as for Cloud."""
    user = jira.users[0]
    monkeypatch.setenv("JIRA_TOKEN", user.api_token)

    def make(credential_hosts: Sequence[str] = (SITE,), **config: Any) -> PluginHarness:
        return corral_plugin(
            PLUGIN_SOURCES["jira-sync"],
            config={"base_url": SITE, "project_key": "DEMO", **config},
            asgi=jira.app,
            credentials=[
                {
                    "hosts": list(credential_hosts),
                    "scheme": "basic",
                    "username": user.email,
                    "secret": "env:JIRA_TOKEN",
                }
            ],
        )

    return make


def test_a_full_pull_from_jira_cloud_with_the_operator_s_credentials(
    jira_sync: MakeJiraSync, jira: JiraEmulator
) -> None:
    plugin = jira_sync()
    report = plugin.sync(full=True)
    assert report.counts["pull"].created == 6, report
    titles = {task.title for task in all_tasks(plugin.tasks).values()}
    assert titles == {issue.values["summary"] for issue in jira.store.current()}
    # Only the manifest's own allowlist (*.atlassian.net) was needed, and every request
    # carried the basic credentials the host added.
    user = jira.users[0]
    basic = "Basic " + base64.b64encode(f"{user.email}:{user.api_token}".encode()).decode()
    assert plugin.http_requests
    assert {r.url.host for r in plugin.http_requests} == {"acme.atlassian.net"}
    assert {r.headers["authorization"] for r in plugin.http_requests} == {basic}
    assert plugin.call("status")["last_runs"][-1]["mode"] == "full"


def test_credentials_bound_to_another_host_leave_jira_refusing(jira_sync: MakeJiraSync) -> None:
    plugin = jira_sync(["https://other.atlassian.net"])
    with pytest.raises(PluginError) as failure:
        plugin.sync(full=True)
    assert failure.value.kind == "unavailable"
    assert "authorization" not in plugin.http_requests[0].headers
    assert all_tasks(plugin.tasks) == {}


def test_unknown_custom_field_name_is_a_config_error_naming_the_field(
    jira_sync: MakeJiraSync,
) -> None:
    plugin = jira_sync(field_mapping={"custom_fields.x": "No Such Field"})
    with pytest.raises(PluginError) as failure:
        plugin.sync(full=True)
    assert failure.value.kind == "invalid-input"
    assert "config.field_mapping.custom_fields.x" in str(failure.value)
    assert "No Such Field" in str(failure.value)
    assert all_tasks(plugin.tasks) == {}
