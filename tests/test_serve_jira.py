"""`corral serve` with the real jira-sync plugin and the Jira emulator, end to end: the
emulator's signed webhooks reach the server over loopback, are queued and delivered to the
plugin's `on-event`; scheduled syncs run the sync driver slice by slice; the plugin's own writes
to Jira come back as webhooks and change nothing."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from corral import PluginHost
from corral.tasks import SQLiteTaskStore, Task
from corral.testing.jira import EmulatorHandle
from jira_sync_setup import PLUGIN, all_tasks, jira_sync_settings, running_jira
from test_serve_events import _spawn_server, plugin_entry, running_server, until

SECRET = "jira-webhook-secret-for-tests"


@pytest.fixture
def jira_sync_config(
    tmp_path: Path,
    plugin_dir: Callable[..., Path],
    compiled_cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Path]:
    """corral.yaml serving jira-sync against `jira`, taking signed webhooks, on `schedule`."""
    monkeypatch.setenv("CORRAL_TEST_JIRA_WEBHOOK_SECRET", SECRET)

    def write(
        jira: EmulatorHandle, schedule: list[dict[str, Any]], *, timeout: str = "30s", **config: Any
    ) -> Path:
        settings = jira_sync_settings(jira, tmp_path / "jira-token", timeout=timeout, **config)
        settings["webhooks"] = {"secret": "env:CORRAL_TEST_JIRA_WEBHOOK_SECRET"}
        settings["schedule"] = schedule
        path = tmp_path / "corral.yaml"
        corral_yaml = {
            "plugin_dirs": [str(plugin_dir(PLUGIN))],
            "data_dir": str(tmp_path / "data"),
            "cache_dir": str(compiled_cache_dir),
            "plugins": {PLUGIN: settings},
            "serve": {"grace_period": "30s"},
        }
        path.write_text(yaml.safe_dump(corral_yaml))
        return path

    return write


def sync_status(client: httpx.Client) -> dict[str, Any]:
    response = client.post(f"/plugins/{PLUGIN}/call/status", json={})
    response.raise_for_status()
    return dict(response.json())


class JiraUser:
    """Another Jira user editing issues over the emulator's REST API, as a person would."""

    def __init__(self, jira: EmulatorHandle) -> None:
        self.http = httpx.Client(
            base_url=jira.url + "/rest/api/3", auth=jira.basic_auth(1), timeout=10
        )

    def issue(self, key: str) -> dict[str, Any]:
        response = self.http.get(f"/issue/{key}")
        response.raise_for_status()
        return dict(response.json())

    def create(self, summary: str) -> dict[str, Any]:
        fields = {"project": {"key": "DEMO"}, "issuetype": {"name": "Task"}, "summary": summary}
        response = self.http.post("/issue", json={"fields": fields})
        response.raise_for_status()
        return dict(response.json())

    def update(self, key: str, **fields: Any) -> None:
        self.http.put(f"/issue/{key}", json={"fields": fields}).raise_for_status()

    def delete(self, key: str) -> None:
        self.http.delete(f"/issue/{key}").raise_for_status()


@pytest.fixture
def jira_user() -> Iterator[Callable[[EmulatorHandle], JiraUser]]:
    users: list[JiraUser] = []

    def make(jira: EmulatorHandle) -> JiraUser:
        users.append(JiraUser(jira))
        return users[-1]

    yield make
    for user in users:
        user.http.close()


def test_jira_webhooks_drive_jira_sync_through_a_corral_serve_process(
    tmp_path: Path,
    jira_sync_config: Callable[..., Path],
    jira_user: Callable[[EmulatorHandle], JiraUser],
) -> None:
    """A real `corral serve` process: one scheduled sync at start, then webhooks alone."""
    schedule = [{"every": "60m", "command": "sync", "input": {"mode": "full"}}]
    data = tmp_path / "data"
    with running_jira(issues=4) as jira:
        person = jira_user(jira)
        keys = sorted(issue.key for issue in jira.emulator.store.current())
        process, base = _spawn_server(jira_sync_config(jira, schedule), tmp_path / "serve.log")
        try:
            with ExitStack() as stack:
                client = stack.enter_context(httpx.Client(base_url=base, timeout=30))
                until(lambda: client.get("/readyz").status_code == 200, what="readyz", timeout=120)
                until(
                    lambda: sync_status(client)["last_runs"], what="the scheduled sync", timeout=60
                )
                store = stack.enter_context(closing(SQLiteTaskStore(data / "tasks.db")))
                assert len(all_tasks(store)) == len(keys)
                jira.emulator.webhooks.add(f"{base}/webhooks/{PLUGIN}", SECRET)
                jira.emulator.faults.set("webhook-duplicate:1")  # each one sent again, as Jira may

                def task_of(key_or_id: str) -> Task | None:
                    return all_tasks(store).get(f"jira-{key_or_id}")

                edited = person.issue(keys[0])["id"]
                person.update(keys[0], summary="edited in Jira")
                until(
                    lambda: (task := task_of(edited)) and task.title == "edited in Jira",
                    what="the edit to reach the task",
                )
                created = person.create("created in Jira")
                until(
                    lambda: (task := task_of(created["id"])) and task.title == "created in Jira",
                    what="the new issue to become a task",
                )
                deleted = person.issue(keys[1])["id"]
                person.delete(keys[1])
                until(
                    lambda: (
                        (task := task_of(deleted))
                        and task.custom_fields.get("jira_gone") == keys[1]
                    ),
                    what="the deleted issue to mark its task",
                )

                # Webhooks alone did it: the scheduled sync ran once, nothing else synced, and
                # each event was applied once (its repeat, a retry, was dropped as a duplicate).
                status = sync_status(client)
                assert len(status["last_runs"]) == 1 and status["running"] is None
                assert len(all_tasks(store)) == len(keys) + 1
                assert jira.emulator.webhooks.flush(30), "Jira still sending"
                until(  # the last delivery is acknowledged just after its write
                    lambda: plugin_entry(client, PLUGIN)["events"] == {"pending": 0, "dead": 0},
                    what="every event acknowledged",
                )
                metrics = client.get("/metrics").text
                delivered = f'entry="on-event",outcome="ok",plugin="{PLUGIN}"'
                assert f"corral_plugin_calls_total{{{delivered}}} 3.0" in metrics
                for outcome in ("queued", "duplicate"):
                    received = (
                        f'corral_webhooks_received_total{{outcome="{outcome}",plugin="{PLUGIN}"}}'
                    )
                    assert f"{received} 3.0" in metrics
                assert {d.status for d in jira.emulator.webhooks.deliveries()} == {202}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0


class SyncCalls:
    """Seen from the host: every run of the sync driver (start, end) and every `sync` slice
    it called into jira-sync (its answer)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[tuple[float, float]] = []
        self.slices: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        call, sync = PluginHost.call, PluginHost.sync

        def recording_call(host: PluginHost, plugin: str, command: str, input: Any = None) -> Any:
            answer = call(host, plugin, command, input)
            if plugin == PLUGIN and command == "sync":
                with self._lock:
                    self.slices.append(answer)
            return answer

        def recording_sync(host: PluginHost, plugin: str, **options: Any) -> Any:
            start = time.monotonic()
            try:
                return sync(host, plugin, **options)
            finally:
                with self._lock:
                    self.runs.append((start, time.monotonic()))

        monkeypatch.setattr(PluginHost, "call", recording_call)
        monkeypatch.setattr(PluginHost, "sync", recording_sync)

    def slices_per_run(self) -> dict[str, int]:
        """How many slices each finished run took, by run id, oldest first."""
        with self._lock:
            slices = list(self.slices)
        finished = {answer["run_id"] for answer in slices if answer["done"]}
        counts: dict[str, int] = {}
        for answer in slices:
            if answer["run_id"] in finished:
                counts[answer["run_id"]] = counts.get(answer["run_id"], 0) + 1
        return counts


def test_a_scheduled_sync_runs_in_slices_and_never_overlaps_itself(
    jira_sync_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 200 ms, with runs that take longer: one slice at a time, every issue one task."""
    schedule = [{"every": "200ms", "command": "sync", "input": {"mode": "incremental"}}]
    calls = SyncCalls(monkeypatch)
    with running_jira(issues=60) as jira:
        # A 1 s timeout gives 500 ms slices that start no page after 300 ms; 12 pages of 5
        # issues at 50 ms a request take at least 600 ms.
        jira.emulator.faults.set("latency:50ms")
        config = jira_sync_config(jira, schedule, timeout="1s", page_size=5)
        with running_server(config) as (client, app):
            until(lambda: len(calls.slices_per_run()) >= 3, what="three runs", timeout=90)
            tasks = all_tasks(app.host.task_store)
            reports = sync_status(client)["last_runs"]
            metrics = client.get("/metrics").text

    first_run = next(iter(calls.slices_per_run().values()))
    assert first_run > 1, "the first run pulls 60 issues: more than one slice"
    assert len(calls.runs) >= 3
    for (_, end), (start, _) in itertools.pairwise(sorted(calls.runs)):
        assert start >= end, "a run started while the last one was running"
    assert sorted(tasks) == sorted(f"jira-{i.id}" for i in jira.emulator.store.current())
    assert sum(report["counts"]["pull"]["created"] for report in reports) == 60
    # every finished run is counted in /metrics, with what it did
    created = f'direction="pull",outcome="created",plugin="{PLUGIN}"'
    assert f"corral_sync_items_total{{{created}}} 60.0" in metrics
    assert f'corral_sync_runs_total{{plugin="{PLUGIN}",result="clean"}}' in metrics


def test_webhooks_of_the_plugins_own_pushes_change_nothing(
    jira_sync_config: Callable[..., Path], jira_user: Callable[[EmulatorHandle], JiraUser]
) -> None:
    """A local edit pushed by a scheduled sync fires Jira's webhook back at the server; that
    delivery, and the syncs after it, leave the task as it was and raise no conflict."""
    schedule = [{"every": "300ms", "command": "sync", "input": {"mode": "incremental"}}]
    with running_jira(issues=3) as jira:
        person = jira_user(jira)
        with running_server(jira_sync_config(jira, schedule)) as (client, app):
            store = app.host.task_store
            until(lambda: len(all_tasks(store)) == 3, what="the first scheduled sync")
            jira.emulator.webhooks.add(f"{client.base_url}/webhooks/{PLUGIN}", SECRET)
            key = min(issue.key for issue in jira.emulator.store.current())
            task_id = f"jira-{person.issue(key)['id']}"
            [edited] = store.put_many(
                [{"id": task_id, "title": "edited here", "status": "in_progress"}], actor="host"
            )

            until(
                lambda: person.issue(key)["fields"]["summary"] == "edited here",
                what="a scheduled sync to push the edit",
            )
            until(
                lambda: any(d.issue_key == key for d in jira.emulator.webhooks.deliveries()),
                what="Jira's webhook for the push",
            )
            assert jira.emulator.webhooks.flush(30), "Jira still sending"
            sent = jira.emulator.webhooks.deliveries()
            queue = app.background.queue
            until(
                lambda: len(queue.list(plugin=PLUGIN, state="delivered")) == len(sent),
                what="Jira's webhooks to be delivered to the plugin",
            )
            # The log of runs is bounded: count the newest run ids seen from now on.
            newest: set[str] = set()

            def newest_run_after_two_more() -> bool:
                newest.add(sync_status(client)["last_runs"][0]["run_id"])
                return len(newest) >= 3

            until(newest_run_after_two_more, what="two more scheduled syncs")

            assert store.get(task_id).version == edited.version
            assert client.post(f"/plugins/{PLUGIN}/call/conflicts", json={}).json() == {
                "conflicts": []
            }
            assert {d.status for d in sent} == {202}
            assert plugin_entry(client, PLUGIN)["events"] == {"pending": 0, "dead": 0}
