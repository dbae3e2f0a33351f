"""A Corral host running the built jira-sync plugin against a Jira emulator on loopback.

`Bench` bundles the two sides a sync test looks at: the local task store (edited as the host
application, actor "host") and Jira (edited over its REST API as another Jira user, so the
plugin's writes and a person's are told apart the way Jira tells them apart).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from corral import PluginHost
from corral.sync import SyncReport
from corral.tasks import Task
from corral.testing.jira import ApiCall, EmulatorHandle, IssueEvent
from jira_sync_setup import all_tasks

PLUGIN = "jira-sync"
GRANTS = ["network.http.outbound", "config.read", "task.read", "task.write", "kv"]


def operator_config(jira: EmulatorHandle, token_file: Path, **config: Any) -> dict[str, Any]:
    """The operator's `plugins.jira-sync` block: one line of allowed_hosts names the emulator."""
    user = jira.users[0]
    token_file.write_text(user.api_token)
    return {
        "grant": GRANTS,
        "config": {"base_url": jira.url, "project_key": "DEMO", **config},
        "http": {
            "allowed_hosts": [jira.url],
            "max_requests_per_call": 10_000,
            "rate_limit": {"requests_per_second": 10_000, "burst": 10_000},
        },
        "credentials": [
            {
                "hosts": [jira.url],
                "scheme": "basic",
                "username": user.email,
                "secret": f"file:{token_file}",
            }
        ],
    }


class Bench:
    def __init__(
        self,
        open_host: Callable[[], PluginHost],
        jira: EmulatorHandle,
        operator: dict[str, Any],
    ) -> None:
        self.open_host = open_host
        self.host = open_host()
        self.jira = jira
        self.operator = operator
        # Another Jira user: the person whose edits the sync must pick up.
        self.http = httpx.Client(
            base_url=jira.url + "/rest/api/3", auth=jira.basic_auth(1), timeout=10
        )

    def reopen(self) -> None:
        """A new host over the same data (as after a restart); the old one is closed."""
        self.host.close()
        self.host = self.open_host()

    # --- running the plugin ----------------------------------------------------------------

    def sync(self, *, full: bool = False, dry_run: bool = False) -> SyncReport:
        return self.host.sync(PLUGIN, full=full, dry_run=dry_run)

    def call(self, command: str, input: Any = None) -> Any:
        # The answer must match the output_schema the manifest declares, too.
        return self.host.call(PLUGIN, command, input, check_output=True)

    # --- the local side ----------------------------------------------------------------------

    def tasks(self) -> dict[str, Task]:
        return all_tasks(self.host.task_store)

    def task_of(self, key: str) -> Task:
        return self.host.task_store.get(f"jira-{self.issue(key)['id']}")

    def edit(self, task_id: str, **values: Any) -> Task:
        [task] = self.host.task_store.put_many([{"id": task_id, **values}], actor="host")
        return task

    def feed_length(self) -> int:
        store = self.host.task_store
        count, cursor = 0, None
        while True:
            page = store.changes_since(cursor, 1000)
            if not page.items:
                return count
            count += len(page.items)
            cursor = page.next_cursor

    # --- the remote side ---------------------------------------------------------------------

    def issue(self, key: str, api: int = 3) -> dict[str, Any]:
        response = self.http.get(f"{self.jira.url}/rest/api/{api}/issue/{key}")
        response.raise_for_status()
        return dict(response.json())

    def fields(self, key: str) -> dict[str, Any]:
        return dict(self.issue(key)["fields"])

    def create_issue(self, summary: str, **fields: Any) -> str:
        body = {
            "fields": {
                "project": {"key": "DEMO"},
                "issuetype": {"name": "Task"},
                "summary": summary,
                **fields,
            }
        }
        response = self.http.post("/issue", json=body)
        response.raise_for_status()
        return str(response.json()["key"])

    def update_issue(self, key: str, **fields: Any) -> None:
        self.http.put(f"/issue/{key}", json={"fields": fields}).raise_for_status()

    def transition_issue(self, key: str, status: str) -> None:
        found = self.http.get(f"/issue/{key}/transitions").json()["transitions"]
        [chosen] = [t for t in found if t["to"]["name"] == status]
        self.http.post(
            f"/issue/{key}/transitions", json={"transition": {"id": chosen["id"]}}
        ).raise_for_status()

    def delete_issue(self, key: str) -> None:
        self.http.delete(f"/issue/{key}").raise_for_status()

    def issue_keys(self) -> list[str]:
        return sorted(i.key for i in self.jira.emulator.store.current())

    def record_requests(self) -> list[ApiCall]:
        """Every REST call the emulator gets from now on."""
        calls: list[ApiCall] = []
        self.jira.emulator.add_hook(_Recorder(calls))
        return calls

    def webhooks_while(self, action: Callable[[], Any]) -> list[dict[str, Any]]:
        """The webhook payloads Jira would send for the writes `action` causes."""
        events: list[IssueEvent] = []
        unsubscribe = self.jira.emulator.on_change(events.append)
        try:
            action()
        finally:
            unsubscribe()
        return [self.payload(event) for event in events]

    def payload(self, event: IssueEvent) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "timestamp": int(event.timestamp.timestamp() * 1000),
            "webhookEvent": f"jira:issue_{event.kind}",
            "issue": self.jira.emulator.render_issue(event.issue),
        }
        if event.history is not None:
            payload["changelog"] = {
                "id": "1",
                "items": [item.to_json() for item in event.history.items],
            }
        return payload

    def deliver(self, payload: dict[str, Any]) -> None:
        self.host.send_event(PLUGIN, payload["webhookEvent"], payload, source="webhook:jira")


class _Recorder:
    def __init__(self, calls: list[ApiCall]) -> None:
        self.calls = calls

    async def before(self, call: ApiCall) -> None:
        self.calls.append(call)

    async def after(self, call: ApiCall, response: object) -> None:
        return None
