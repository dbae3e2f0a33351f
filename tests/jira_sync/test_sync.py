"""jira-sync through the real plugin in Wasmtime, against the Jira emulator over loopback."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .harness import Bench


def test_full_pull_then_incremental_costs_no_task_write(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=30, page_size=7)
    report = bench.sync(full=True)
    assert report.counts["pull"].created == 30, report
    tasks = bench.tasks()
    assert len(tasks) == 30
    for key in bench.issue_keys():
        fields, task = bench.fields(key), bench.task_of(key)
        assert task.title == fields["summary"]
        assert sorted(task.labels) == sorted(fields["labels"])
        assert task.due_date == fields["duedate"]
    feed = bench.feed_length()
    again = bench.sync()
    assert again.counts["pull"].created == again.counts["pull"].updated == 0
    assert bench.feed_length() == feed  # an unchanged issue costs no task write
    assert again.clean


def test_remote_edit_pulled_and_local_edit_pushed_with_only_that_field(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=5)
    bench.sync(full=True)
    first, second = bench.issue_keys()[:2]
    description_before = bench.fields(second)["description"]
    bench.update_issue(first, summary="renamed in Jira")
    bench.edit(bench.task_of(second).id, title="renamed locally")

    report = bench.sync()

    assert report.counts["pull"].updated == 1 and report.counts["push"].updated == 1, report
    assert bench.task_of(first).title == "renamed in Jira"
    assert bench.fields(second)["summary"] == "renamed locally"
    # A description nobody edited is never rewritten (its ADF would not survive the trip).
    assert bench.fields(second)["description"] == description_before
    assert bench.sync().counts["push"].updated == 0  # its own writes do not come back


@pytest.mark.parametrize(
    ("strategy", "winner"), [("remote-wins", "remote"), ("local-wins", "local")]
)
def test_fixed_strategies_settle_a_field_changed_on_both_sides(
    make_bench: Any, strategy: str, winner: str
) -> None:
    bench: Bench = make_bench(issues=1, conflict_strategy=strategy)
    bench.sync(full=True)
    [key] = bench.issue_keys()
    bench.update_issue(key, summary="remote title")
    bench.edit(bench.task_of(key).id, title="local title")

    report = bench.sync()

    expected = f"{winner} title"
    assert bench.task_of(key).title == expected
    assert bench.fields(key)["summary"] == expected
    assert report.conflicts == 0 and bench.host.conflicts("jira-sync") == []


def test_newest_wins_compares_the_change_times(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=2, conflict_strategy="newest-wins")
    bench.sync(full=True)
    older_local, older_remote = bench.issue_keys()
    bench.update_issue(older_remote, summary="remote, earlier")
    time.sleep(0.05)
    bench.edit(bench.task_of(older_remote).id, title="local, later")
    bench.edit(bench.task_of(older_local).id, title="local, earlier")
    bench.jira.emulator.clock.advance(120)  # Jira's clock: the next edit is later than both
    bench.update_issue(older_local, summary="remote, later")

    bench.sync()

    assert bench.task_of(older_local).title == "remote, later"
    assert bench.fields(older_remote)["summary"] == "local, later"


def test_per_field_overrides(make_bench: Any) -> None:
    bench: Bench = make_bench(
        issues=1,
        conflict_strategy="manual",
        field_mapping={
            "title": {"conflict_strategy": "local-wins"},
            "due_date": {"direction": "pull"},
            "labels": None,
        },
    )
    bench.sync(full=True)
    [key] = bench.issue_keys()
    task = bench.task_of(key)
    bench.update_issue(key, summary="remote", labels=["from-jira"])
    bench.edit(task.id, title="local", due_date="2031-01-01", labels=["local-only"])

    report = bench.sync()

    assert bench.fields(key)["summary"] == "local"  # local-wins on title only
    assert bench.fields(key)["duedate"] != "2031-01-01"  # pull-only: never pushed
    assert bench.fields(key)["labels"] == ["from-jira"]  # unmapped: left alone both ways
    assert bench.task_of(key).labels == ["local-only"]
    assert report.conflicts == 0


def test_manual_conflict_holds_one_field_and_resolve_settles_it(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=1)
    bench.sync(full=True)
    [key] = bench.issue_keys()
    task = bench.task_of(key)
    bench.update_issue(key, summary="remote title", duedate="2030-05-05")
    bench.edit(task.id, title="local title", priority="low")

    report = bench.sync()

    assert report.conflicts == 1 and not report.clean
    [conflict] = bench.host.conflicts("jira-sync")
    assert (conflict.field, conflict.local, conflict.remote) == (
        "title",
        "local title",
        "remote title",
    )
    # The other fields kept syncing; the conflicting one is left alone on both sides.
    assert bench.task_of(key).due_date == "2030-05-05"
    assert bench.fields(key)["priority"]["name"] == "Low"
    assert bench.task_of(key).title == "local title"
    assert bench.fields(key)["summary"] == "remote title"
    assert bench.sync().conflicts == 0  # still open, not recorded twice
    assert len(bench.host.conflicts("jira-sync")) == 1

    resolution = bench.host.resolve("jira-sync", conflict.id, take="value", value="agreed")

    assert resolution.pushed and resolution.pulled
    assert bench.task_of(key).title == bench.fields(key)["summary"] == "agreed"
    assert bench.host.conflicts("jira-sync") == []
    assert bench.sync().clean


def test_echo_suppression_with_webhooks_firing(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=3)
    bench.sync(full=True)
    key = bench.issue_keys()[0]
    bench.edit(bench.task_of(key).id, title="pushed by the sync", status="in_progress")
    payloads = bench.webhooks_while(bench.sync)
    assert payloads, "the sync's own writes fire webhooks, as in Jira"
    feed = bench.feed_length()

    for payload in payloads + payloads:  # deliveries repeat
        bench.deliver(payload)

    assert bench.feed_length() == feed  # its own writes never come back as remote changes
    report = bench.sync()
    assert report.counts["pull"].updated == report.counts["push"].updated == 0


def test_webhook_is_a_hint_and_applies_the_issue_as_jira_has_it(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=1)
    bench.sync(full=True)
    [key] = bench.issue_keys()
    [payload] = bench.webhooks_while(lambda: bench.update_issue(key, summary="real"))
    forged = {**payload, "issue": {**payload["issue"]}}
    forged["issue"]["fields"] = {**payload["issue"]["fields"], "summary": "forged"}

    bench.deliver(forged)

    assert bench.task_of(key).title == "real"
    bench.deliver(payload)
    assert bench.task_of(key).title == "real"


def test_status_goes_through_transitions_and_an_unreachable_one_is_reported(
    make_bench: Any,
) -> None:
    bench: Bench = make_bench(
        issues=2, field_mapping={"status": {"values": {"Nowhere": "nowhere"}}}
    )
    bench.sync(full=True)
    first, second = bench.issue_keys()
    bench.edit(bench.task_of(first).id, status="done")
    bench.edit(bench.task_of(second).id, status="nowhere", title="still pushed")

    report = bench.sync()

    assert bench.fields(first)["status"]["name"] == "Done", report
    assert bench.fields(second)["summary"] == "still pushed"
    [error] = report.errors
    assert error.key == second and "transition" in error.reason


def test_deleted_issue_marks_its_task(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=3)
    bench.sync(full=True)
    gone = bench.issue_keys()[1]
    task_id = bench.task_of(gone).id
    bench.delete_issue(gone)

    report = bench.sync(full=True)

    assert report.counts["pull"].deleted == 1
    assert bench.host.task_store.get(task_id).custom_fields["jira_gone"] == gone
    assert any(e.key == gone for e in report.errors)
    assert bench.sync(full=True).counts["pull"].deleted == 0  # reported once, then left be


def test_deleted_issue_webhook_marks_its_task_after_checking(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=2)
    bench.sync(full=True)
    alive, gone = bench.issue_keys()
    [forged] = bench.webhooks_while(lambda: bench.update_issue(alive, summary="x"))
    [deleted] = bench.webhooks_while(lambda: bench.delete_issue(gone))
    task_id = bench.task_of(alive).id
    bench.deliver({**forged, "webhookEvent": "jira:issue_deleted"})  # a lie: it still exists
    bench.deliver(deleted)

    assert "jira_gone" not in bench.host.task_store.get(task_id).custom_fields
    [marked] = [t for t in bench.tasks().values() if t.custom_fields.get("jira_gone")]
    assert marked.custom_fields["jira_gone"] == gone


def test_local_task_creates_an_issue_in_its_status(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=0, create_remote=True)
    [task] = bench.host.task_store.put_many(
        [{"title": "made here", "priority": "high", "status": "in_progress", "labels": ["x"]}],
        actor="host",
    )

    report = bench.sync()

    assert report.counts["push"].created == 1, report
    [key] = bench.issue_keys()
    fields = bench.fields(key)
    assert fields["summary"] == "made here" and fields["priority"]["name"] == "High"
    assert fields["status"]["name"] == "In Progress"
    assert bench.tasks()[task.id].labels == ["x"]
    assert bench.sync().counts["pull"].created == 0  # not pulled back as a second task
    assert len(bench.tasks()) == 1


def test_webhooks_racing_a_running_sync_lose_and_duplicate_nothing(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=40, page_size=5)
    bench.sync(full=True)
    keys = bench.issue_keys()
    payloads = bench.webhooks_while(
        lambda: (
            [bench.update_issue(k, summary=f"webhook {k}") for k in keys[:20]]
            + [bench.create_issue("born during the race")]
        )
    )
    for key in keys[20:30]:
        bench.edit(bench.task_of(key).id, title=f"local {key}")

    with ThreadPoolExecutor(max_workers=3) as pool:
        running = pool.submit(bench.sync, full=True)
        delivered = list(pool.map(bench.deliver, payloads + payloads))
        running.result()
    assert len(delivered) == 2 * len(payloads)
    report = bench.sync()

    assert report.clean, report
    tasks = bench.tasks()
    assert len(tasks) == len(bench.issue_keys()) == 41  # the new issue became one task
    for key in keys[:20]:
        assert bench.task_of(key).title == f"webhook {key}"
    for key in keys[20:30]:
        assert bench.fields(key)["summary"] == f"local {key}"
