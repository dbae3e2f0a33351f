"""Property: random interleavings of local edits, remote edits by another Jira user, faults
and syncs converge. After faults stop and a final sync, both sides agree on every mapped field
not in an open conflict, no issue or task is duplicated, and each field holds a value one of
the two sides last wrote (an edit is lost only where the field's strategy discards it)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from corral import PluginHost
from corral.bundle import Bundle
from corral.testing.jira import JiraEmulator, serve

from .harness import PLUGIN, Bench, operator_config
from .test_faults import Throttle

TITLES = st.sampled_from(["alpha", "beta", "gamma", "delta"])
PRIORITIES = st.sampled_from(["high", "medium", "low"])
DATES = st.sampled_from([None, "2030-01-01", "2031-06-15"])
JIRA_PRIORITY = {"high": "High", "medium": "Medium", "low": "Low"}
LOCAL_PRIORITY = {"Highest": "critical", "Lowest": "lowest"} | {
    jira: local for local, jira in JIRA_PRIORITY.items()
}
MAPPING = {
    "title": {"conflict_strategy": "manual"},
    "priority": {"conflict_strategy": "remote-wins"},
    "due_date": {"conflict_strategy": "local-wins"},
    "description": None,
    "labels": None,
    "assignee": None,
    "status": None,
}


@pytest.fixture
def jira_sync_bundle(bundles: dict[str, Bundle]) -> Bundle:
    return bundles[PLUGIN]


def test_random_edits_faults_and_syncs_converge(
    jira_sync_bundle: Bundle, compiled_cache_dir: Path
) -> None:
    class Convergence(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.work = Path(tempfile.mkdtemp(prefix="jira-sync-prop-"))
            shutil.copytree(jira_sync_bundle.directory, self.work / "plugins" / PLUGIN)
            self.emulator = JiraEmulator(issues=3, seed=1)
            self.server = serve(self.emulator)
            handle = self.server.__enter__()
            self.options = operator_config(
                handle, self.work / "token", field_mapping=MAPPING, create_remote=True
            )
            self.bench = Bench(self.open_host, handle, self.options)
            self.bench.sync(full=True)
            self.keys = self.bench.issue_keys()
            self.tasks = [self.bench.task_of(k).id for k in self.keys]
            self.throttle: Throttle | None = None
            self.written: dict[tuple[str, str], set[Any]] = {}

        def open_host(self) -> PluginHost:
            host = PluginHost(
                plugin_dirs=[self.work / "plugins"],
                data_dir=self.work / "data",
                cache_dir=compiled_cache_dir,
                plugins={PLUGIN: self.options},
            )
            host.load()
            return host

        def wrote(self, task_id: str, field: str, value: Any) -> None:
            self.written.setdefault((task_id, field), set()).add(value)

        @rule(i=st.integers(0, 2), title=TITLES, priority=PRIORITIES, due=DATES)
        def local_edit(self, i: int, title: str, priority: str, due: str | None) -> None:
            task_id = self.tasks[i]
            self.bench.edit(task_id, title=title, priority=priority, due_date=due)
            for field, value in (("title", title), ("priority", priority), ("due_date", due)):
                self.wrote(task_id, field, value)

        @rule(i=st.integers(0, 2), title=TITLES, priority=PRIORITIES, due=DATES)
        def remote_edit(self, i: int, title: str, priority: str, due: str | None) -> None:
            self.bench.update_issue(
                self.keys[i],
                summary=title,
                priority={"name": JIRA_PRIORITY[priority]},
                duedate=due,
            )
            for field, value in (("title", title), ("priority", priority), ("due_date", due)):
                self.wrote(self.tasks[i], field, value)

        @rule(title=TITLES)
        def local_create(self, title: str) -> None:
            [task] = self.bench.host.task_store.put_many([{"title": title}], actor="host")
            self.wrote(task.id, "title", title)

        @precondition(lambda self: self.throttle is None)
        @rule(seed=st.integers(0, 100))
        def storm_starts(self, seed: int) -> None:
            self.throttle = Throttle(
                lambda n: "0" if (n * 7 + seed) % 3 == 0 else None,
                only=self.bench.jira.users[0].email,  # the plugin's user, not the other person
            )
            self.emulator.add_hook(self.throttle)
            self.emulator.search_lag = timedelta(seconds=5)

        @precondition(lambda self: self.throttle is not None)
        @rule()
        def storm_ends(self) -> None:
            assert self.throttle is not None
            self.emulator.remove_hook(self.throttle)
            self.throttle = None

        @rule()
        def sync(self) -> None:
            self.bench.sync()

        def teardown(self) -> None:
            try:
                self.check_converged()
            finally:
                self.bench.host.close()
                self.server.__exit__(None, None, None)
                self.emulator.close()
                shutil.rmtree(self.work, ignore_errors=True)

        def check_converged(self) -> None:
            if self.throttle is not None:
                self.storm_ends()
            self.emulator.search_lag = timedelta(0)
            self.emulator.clock.advance(120)
            self.bench.sync()
            self.bench.sync()
            tasks = self.bench.tasks()
            issues = {k: self.bench.fields(k) for k in self.bench.issue_keys()}
            assert len(issues) == len(tasks), "one issue per task, none duplicated"
            open_conflicts = {(c.task_id, c.field) for c in self.bench.host.conflicts(PLUGIN)}
            for task in tasks.values():
                key = self.key_of(task.id, issues)
                fields = issues[key]
                remote = {
                    "title": fields["summary"],
                    "priority": LOCAL_PRIORITY[fields["priority"]["name"]],
                    "due_date": fields["duedate"],
                }
                local = {"title": task.title, "priority": task.priority, "due_date": task.due_date}
                for field in remote:
                    if (task.id, field) in open_conflicts:
                        continue
                    assert local[field] == remote[field], (task.id, field, local, remote)
                    written = self.written.get((task.id, field))
                    if written:
                        assert local[field] in written, (field, local[field], written)

        def key_of(self, task_id: str, issues: dict[str, dict[str, Any]]) -> str:
            if task_id in self.tasks:
                return self.keys[self.tasks.index(task_id)]
            [key] = [k for k, f in issues.items() if f"corral-{task_id}" in f["labels"]]
            return key

    run_state_machine_as_test(
        Convergence,
        settings=settings(
            max_examples=10,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
