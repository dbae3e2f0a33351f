"""SQLiteTaskStore against real SQLite files: model validation, upserts, optimistic concurrency,
queries, links, the change feed, concurrent writers (threads and a second process) and a writer
killed mid-transaction."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import vm_steps
from corral._errors import Conflict, InvalidInput, NotFound, Unavailable
from corral.tasks import Change, Link, SQLiteTaskStore, Task, TaskFilter, WriteBounds

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteTaskStore]:
    store = SQLiteTaskStore(tmp_path / "tasks.db")
    yield store
    store.close()


def all_tasks(
    store: SQLiteTaskStore, task_filter: TaskFilter | None = None, limit: int = 1000
) -> list[Task]:
    tasks: list[Task] = []
    cursor = None
    while True:
        page = store.query(task_filter or TaskFilter(), cursor, limit)
        tasks += page.items
        if page.next_cursor is None:
            return tasks
        cursor = page.next_cursor


def all_changes(store: SQLiteTaskStore) -> list[Change]:
    changes: list[Change] = []
    cursor = None
    while (page := store.changes_since(cursor, 1000)).next_cursor is not None:
        changes += page.items
        cursor = page.next_cursor
    return changes


def by_id(task: Task) -> str:
    return task.id


def link(task_id: str, key: str = "J-1", plugin: str = "jira-sync", **snapshot: Any) -> Link:
    return Link(
        plugin=plugin,
        system="jira",
        external_key=key,
        task_id=task_id,
        snapshot=json.dumps(snapshot),
    )


# --- model validation ----------------------------------------------------------------------------


class _Fields(dict[Any, Any]):
    """A dict subclass, as a host application might pass."""


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"title": ""}, "tasks[3].title: must not be empty"),
        ({"description": "no title"}, "tasks[3].title: required when creating a task"),
        (
            {"title": "t", "due_date": "2024-13-01"},
            'tasks[3].due_date: "2024-13-01" is not a date (YYYY-MM-DD)',
        ),
        (
            {"title": "t", "due_date": "20240101"},
            'tasks[3].due_date: "20240101" is not a date (YYYY-MM-DD)',
        ),
        (
            {"title": "t", "labels": "a"},
            "tasks[3].labels: expected an array of strings, got a string",
        ),
        ({"title": "t", "labels": ["a", 3]}, "tasks[3].labels[1]: expected a string, got a number"),
        ({"title": "t", "assignee": ["x"]}, "tasks[3].assignee: expected a string, got an array"),
        (
            {"title": "t", "custom_fields": []},
            "tasks[3].custom_fields: expected an object, got an array",
        ),
        (
            {"title": "t", "custom_fields": {"a": [1.0, float("nan")]}},
            "tasks[3].custom_fields.a[1]: nan is not a JSON number",
        ),
        (
            {"title": "t", "custom_fields": {"a": {1: 2}}},
            "tasks[3].custom_fields.a: key 1 is not a string",
        ),
        (
            {"title": "t", "expected_version": -1},
            "tasks[3].expected_version: expected a version number (0 or more), got -1",
        ),
        (
            {"title": "t", "expected_version": True},
            "tasks[3].expected_version: expected a version number (0 or more), got true",
        ),
        ({"title": "t", "colour": "red"}, "tasks[3].colour: unknown field"),
        ({"title": " \t"}, "tasks[3].title: must not be empty"),
        ({"title": "t", "assignee": ""}, "tasks[3].assignee: must not be empty"),
        # What `json.dumps` would quietly turn into JSON, however deep, and in a dict subclass.
        (
            {"id": "t", "link": {"system": "j", "external_key": "J-1", "snapshot": {"a": (1,)}}},
            "tasks[3].link.snapshot.a: tuple is not a JSON value",
        ),
        (
            {"id": "t", "link": {"system": "j", "external_key": "J-1", "snapshot": [{2: 0}]}},
            "tasks[3].link.snapshot[0]: key 2 is not a string",
        ),
        (
            {"title": "t", "custom_fields": {"a": _Fields({3: 0})}},
            "tasks[3].custom_fields.a: key 3 is not a string",
        ),
        ("just a title", "tasks[3]: expected an object, got a string"),
    ],
)
def test_invalid_items_are_named_by_field(store: SQLiteTaskStore, item: Any, message: str) -> None:
    valid = [{"title": f"ok {i}"} for i in range(3)]
    with pytest.raises(InvalidInput) as caught:
        store.put_many([*valid, item], actor="host")
    assert str(caught.value) == message
    assert all_tasks(store) == []  # the valid items were not written either


def test_task_json_round_trips_every_field(store: SQLiteTaskStore) -> None:
    [task] = store.put_many(
        [
            {
                "title": "Ship it",
                "description": "all of it",
                "status": "doing",
                "priority": "high",
                "assignee": "ana",
                "labels": ["release", "q3", "release"],
                "due_date": "2024-02-29",
                "custom_fields": {"points": 3, "links": [{"url": "https://x"}], "ok": None},
            }
        ],
        actor="host",
    )
    assert task.labels == ["release", "q3"]  # repeats collapse, order kept
    assert Task.from_json(task.to_json()) == task == store.get(task.id)
    assert json.loads(json.dumps(task.to_json())) == task.to_json()


def test_task_from_json_requires_title_and_rejects_unknown_keys() -> None:
    with pytest.raises(InvalidInput, match=r"^task\.title: required$"):
        Task.from_json({"status": "todo"})
    with pytest.raises(InvalidInput, match=r"^task\.expected_version: unknown field$"):
        Task.from_json({"title": "t", "expected_version": 1})
    assert re.fullmatch("[0-9a-f]{32}", Task.from_json({"title": "t"}).id)


def test_filter_from_json() -> None:
    parsed = TaskFilter.from_json(
        {"status": "todo", "updated_since": "2024-01-01T02:00:00+02:00", "linked": "jira"},
        plugin="jira-sync",
    )
    assert parsed == TaskFilter(
        status="todo",
        updated_since="2024-01-01T00:00:00.000Z",
        linked_system="jira",
        linked_plugin="jira-sync",
    )
    for data, message in [
        ({"status": 1}, "filter.status: expected a string, got a number"),
        ({"linked_plugin": "other"}, "filter.linked_plugin: unknown field"),
        (
            {"updated_since": "yesterday"},
            'filter.updated_since: "yesterday" is not an ISO-8601 timestamp',
        ),
        (
            {"updated_since": "2024-01-01T00:00:00"},
            'filter.updated_since: "2024-01-01T00:00:00" has no time zone (add Z for UTC)',
        ),
        ({"unlinked": "jira"}, "filter.unlinked: links belong to a plugin, and none was given"),
        (
            {"links": {"system": "jira", "external_keys": ["J-1"]}},
            "filter.links: links belong to a plugin, and none was given",
        ),
        ([], "filter: expected an object, got an array"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            TaskFilter.from_json(data)
        assert str(caught.value) == message
    with pytest.raises(InvalidInput, match="linked_system and linked_plugin go together"):
        TaskFilter(linked_system="jira")


def test_links_filter_from_json() -> None:
    keys = {"system": "jira", "external_keys": ["J-2", "J-1", "J-2"]}
    assert TaskFilter.from_json({"links": keys, "status": "todo"}, plugin="p") == TaskFilter(
        status="todo", linked_system="jira", linked_plugin="p", linked_keys=("J-2", "J-1")
    )
    for data, message in [
        ({"links": {"system": "jira"}}, "filter.links.external_keys: required"),
        ({"links": {"external_keys": []}}, "filter.links.system: required"),
        (
            {"links": {"system": "jira", "external_keys": "J-1"}},
            "filter.links.external_keys: expected an array of strings, got a string",
        ),
        (
            {"links": {"system": "jira", "external_keys": [""]}},
            "filter.links.external_keys[0]: must not be empty",
        ),
        (
            {"links": {"system": "jira", "external_keys": ["J"] * 501}},
            "filter.links.external_keys: 501 keys; the most per query is 500",
        ),
        (
            {"links": {"system": "jira", "external_keys": []}, "linked": "jira"},
            "filter.links: give either linked or links, not both",
        ),
    ]:
        with pytest.raises(InvalidInput) as caught:
            TaskFilter.from_json(data, plugin="p")
        assert str(caught.value) == message
    with pytest.raises(InvalidInput, match="linked_keys needs linked_system"):
        TaskFilter(linked_keys=("J-1",))


# --- create, update, delete ----------------------------------------------------------------------


def test_create_sets_defaults_id_timestamps_and_version(store: SQLiteTaskStore) -> None:
    [task] = store.put_many([{"title": "Write docs"}], actor="host")
    assert re.fullmatch("[0-9a-f]{32}", task.id)
    assert (task.status, task.priority, task.assignee, task.labels) == ("todo", "medium", None, [])
    assert (task.description, task.due_date, task.custom_fields) == ("", None, {})
    assert task.version == 1
    assert TIMESTAMP.fullmatch(task.created_at) and task.updated_at == task.created_at
    assert store.get(task.id) == task


def test_update_replaces_given_fields_and_keeps_the_rest(store: SQLiteTaskStore) -> None:
    [task] = store.put_many(
        [{"title": "t", "assignee": "ana", "labels": ["a"], "custom_fields": {"x": 1}}],
        actor="host",
    )
    [updated] = store.put_many(
        [{"id": task.id, "status": "done", "assignee": None, "labels": ["b"]}], actor="host"
    )
    assert updated.version == 2
    assert (updated.title, updated.status, updated.assignee) == ("t", "done", None)
    assert (updated.labels, updated.custom_fields) == (["b"], {"x": 1})
    assert updated.created_at == task.created_at and updated.updated_at >= task.updated_at
    assert store.get(task.id) == updated
    assert [t.id for t in all_tasks(store, TaskFilter(label="a"))] == []
    assert [t.id for t in all_tasks(store, TaskFilter(label="b"))] == [task.id]
    # A task read from the store can be written back as it is: stored fields are ignored.
    [again] = store.put_many([updated.to_json()], actor="host")
    assert again.version == 3 and again.created_at == task.created_at


def test_unknown_id_creates_the_task_with_that_id(store: SQLiteTaskStore) -> None:
    [task] = store.put_many(
        [{"id": "JIRA-7", "title": "From Jira", "expected_version": 0}], actor="sync"
    )
    assert (task.id, task.version) == ("JIRA-7", 1)
    assert store.get("JIRA-7").title == "From Jira"


def test_get_missing_task(store: SQLiteTaskStore) -> None:
    with pytest.raises(NotFound, match='task "nope" does not exist'):
        store.get("nope")


def test_version_conflict_fails_the_whole_batch(store: SQLiteTaskStore) -> None:
    first, second = store.put_many([{"title": "one"}, {"title": "two"}], actor="host")
    feed_before = all_changes(store)
    batch: list[dict[str, Any]] = [
        {"title": "three"},
        {"id": first.id, "title": "one, edited", "expected_version": 1},
        {"id": second.id, "title": "two, edited", "expected_version": 4},
    ]
    with pytest.raises(Conflict) as caught:
        store.put_many(batch, actor="host")
    assert str(caught.value) == f'task "{second.id}" is at version 1, not the expected version 4'
    assert all_tasks(store) == sorted([first, second], key=by_id)
    assert all_changes(store) == feed_before


def test_expected_version_zero_means_must_not_exist(store: SQLiteTaskStore) -> None:
    store.put_many([{"id": "a", "title": "a"}], actor="host")
    with pytest.raises(Conflict, match=r'task "a" is at version 1, not the expected version 0'):
        store.put_many([{"id": "a", "title": "again", "expected_version": 0}], actor="host")
    with pytest.raises(
        Conflict, match=r'task "b" does not exist \(version 0\), not the expected version 2'
    ):
        store.put_many([{"id": "b", "title": "b", "expected_version": 2}], actor="host")


def test_a_batch_writes_each_task_once(store: SQLiteTaskStore) -> None:
    with pytest.raises(
        InvalidInput, match=r'^tasks\[2\]\.id: task "a" is also written by tasks\[0\]'
    ):
        store.put_many(
            [{"id": "a", "title": "1"}, {"title": "2"}, {"id": "a", "title": "3"}], actor="host"
        )


def test_delete(store: SQLiteTaskStore) -> None:
    [task] = store.put_many([{"title": "t", "labels": ["x"]}], actor="host")
    with pytest.raises(
        Conflict, match=f'task "{task.id}" is at version 1, not the expected version 3'
    ):
        store.delete(task.id, 3, actor="host")
    store.delete(task.id, 1, actor="host")
    with pytest.raises(NotFound):
        store.get(task.id)
    with pytest.raises(NotFound):
        store.delete(task.id, None, actor="host")
    assert all_tasks(store, TaskFilter(label="x")) == []


def test_quota_counts_the_actors_existing_creations(store: SQLiteTaskStore) -> None:
    bounds = WriteBounds(max_created=3)
    store.put_many([{"id": "h", "title": "host's"}], actor="host")
    store.put_many([{"id": "a", "title": "a"}, {"id": "b", "title": "b"}], actor="p", bounds=bounds)
    # Updating a task, even another actor's, creates nothing.
    store.put_many([{"id": "h", "title": "edited"}, {"id": "a", "title": "x"}], "p", bounds)
    with pytest.raises(InvalidInput, match="would create 2 tasks; p has 2 of its quota of 3"):
        store.put_many([{"id": "c", "title": "c"}, {"id": "d", "title": "d"}], "p", bounds)
    assert sorted(t.id for t in all_tasks(store)) == ["a", "b", "h"]  # the refused batch: nothing
    store.delete("a", None, actor="host")  # whoever deletes it, its creator's place is free
    store.put_many([{"id": "c", "title": "c"}, {"id": "d", "title": "d"}], "p", bounds)
    # Another actor's deletions and creations are not p's.
    store.delete("h", None, actor="p")
    with pytest.raises(InvalidInput, match="p has 3 of its quota of 3"):
        store.put_many([{"id": "e", "title": "e"}], "p", bounds)


def test_quota_check_costs_the_same_however_many_tasks_the_actor_made(tmp_path: Path) -> None:
    def steps_to_check(made: int) -> int:
        """SQLite VM steps of a one-task batch under a quota, after `made` creations."""
        store = SQLiteTaskStore(tmp_path / f"{made}.db")
        try:
            store.put_many([{"id": f"t{i}", "title": "t"} for i in range(made)], actor="p")
            bounds = WriteBounds(max_created=10**6)
            _, steps = vm_steps(store._db, lambda: store.put_many([{"title": "t"}], "p", bounds))
            return steps
        finally:
            store.close()

    assert steps_to_check(3000) < 1.5 * steps_to_check(30)


def test_a_store_from_before_creators_were_kept_counts_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = SQLiteTaskStore(path)
    store.put_many([{"id": f"p{i}", "title": "t"} for i in range(3)], actor="p")
    store.put_many([{"id": "q0", "title": "t"}, {"id": "p0", "title": "edit"}], actor="q")
    store.delete("p1", None, actor="host")
    store.close()
    with sqlite3.connect(path) as conn:  # as a store written by an older Corral left it
        conn.execute("DROP TABLE task_creators")
        conn.execute("DROP TABLE task_creator_counts")
    store = SQLiteTaskStore(path)
    try:
        with pytest.raises(InvalidInput, match="p has 2 of its quota of 2"):
            store.put_many([{"title": "t"}], "p", WriteBounds(max_created=2))
        with pytest.raises(InvalidInput, match="q has 1 of its quota of 1"):
            store.put_many([{"title": "t"}], "q", WriteBounds(max_created=1))
    finally:
        store.close()


def test_empty_batch_writes_nothing(store: SQLiteTaskStore) -> None:
    assert store.put_many([], actor="host") == []
    assert store.changes_since(None, 10).items == []


# --- queries -------------------------------------------------------------------------------------


def test_query_filters(store: SQLiteTaskStore) -> None:
    a, b, c = store.put_many(
        [
            {"title": "a", "status": "todo", "assignee": "ana", "labels": ["bug"]},
            {"title": "b", "status": "done", "assignee": "ana", "labels": ["bug", "ui"]},
            {"title": "c", "status": "todo", "assignee": "bo"},
        ],
        actor="host",
    )
    time.sleep(0.002)  # a later millisecond for updated_since
    [c] = store.put_many([{"id": c.id, "priority": "high"}], actor="host")
    store.put_link(link(a.id, "J-1"))
    store.put_link(link(b.id, "G-1", plugin="github-sync"))

    def ids(**conditions: Any) -> set[str]:
        return {task.id for task in all_tasks(store, TaskFilter(**conditions))}

    assert ids() == {a.id, b.id, c.id}
    assert ids(status="todo") == {a.id, c.id}
    assert ids(assignee="ana") == {a.id, b.id}
    assert ids(label="bug", status="todo") == {a.id}
    assert ids(label="ui") == {b.id}
    assert ids(updated_since=c.updated_at) == {c.id}
    assert ids(linked_system="jira", linked_plugin="jira-sync") == {a.id}
    jira_keys = {"linked_system": "jira", "linked_plugin": "jira-sync"}
    assert ids(**jira_keys, linked_keys=("J-1", "J-9")) == {a.id}
    assert ids(**jira_keys, linked_keys=("J-9",)) == set()
    assert ids(**jira_keys, linked_keys=("J-1",), status="done") == set()
    # b is linked by "G-1" in "jira", but through another plugin.
    assert ids(**jira_keys, linked_keys=("G-1",)) == set()
    assert ids(**jira_keys, linked_keys=()) == set()
    # b's link to "jira" belongs to another plugin, so for jira-sync b is unlinked.
    assert ids(unlinked_system="jira", unlinked_plugin="jira-sync") == {b.id, c.id}
    assert ids(unlinked_system="jira", unlinked_plugin="jira-sync", assignee="ana") == {b.id}


def test_keyset_pagination_has_no_duplicates_or_gaps(store: SQLiteTaskStore) -> None:
    for batch in range(5):
        store.put_many(
            [{"title": f"{batch}-{i}", "status": ("todo", "done")[i % 2]} for i in range(41)],
            actor="host",
        )
    everything = all_tasks(store, limit=1000)
    assert len(everything) == 205
    assert [(t.updated_at, t.id) for t in everything] == sorted(
        (t.updated_at, t.id) for t in everything
    )
    for limit in (1, 7, 41, 204, 205):
        pages = []
        cursor = None
        while True:
            page = store.query(TaskFilter(), cursor, limit)
            pages.append(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert all(len(items) == limit for items in pages[:-1])
        assert [task for items in pages for task in items] == everything
    done = all_tasks(store, TaskFilter(status="done"), limit=9)
    assert done == [task for task in everything if task.status == "done"]


def test_limit_is_clamped(store: SQLiteTaskStore) -> None:
    store.put_many([{"title": str(i)} for i in range(1001)], actor="host")
    assert len(store.query(TaskFilter(), None, 0).items) == 1
    page = store.query(TaskFilter(), None, 10**6)
    assert len(page.items) == 1000 and page.next_cursor is not None
    assert len(store.changes_since(None, -5).items) == 1


def test_foreign_cursors_are_rejected(store: SQLiteTaskStore) -> None:
    store.put_many([{"title": "a"}, {"title": "b"}], actor="host")
    changes_cursor = store.changes_since(None, 1).next_cursor
    query_cursor = store.query(TaskFilter(), None, 1).next_cursor
    assert changes_cursor and query_cursor
    for call in (
        lambda: store.query(TaskFilter(), changes_cursor, 1),
        lambda: store.query(TaskFilter(), "garbage!", 1),
        lambda: store.changes_since(query_cursor, 1),
        lambda: store.changes_since("", 1),
    ):
        with pytest.raises(InvalidInput, match="was not returned by"):
            call()


# --- links ---------------------------------------------------------------------------------------


def test_links_round_trip_and_are_private_per_plugin(store: SQLiteTaskStore) -> None:
    [task] = store.put_many([{"title": "t"}], actor="host")
    stored = store.put_link(link(task.id, status="open", summary="Ünïcode"))
    assert TIMESTAMP.fullmatch(stored.updated_at)
    assert store.get_link("jira-sync", "jira", "J-1") == stored
    assert json.loads(stored.snapshot) == {"status": "open", "summary": "Ünïcode"}
    assert store.links_for_task("jira-sync", task.id) == [stored]

    # Another plugin sees none of it, and may use the same external key for itself.
    with pytest.raises(NotFound):
        store.get_link("other", "jira", "J-1")
    assert store.links_for_task("other", task.id) == []
    store.put_link(link(task.id, plugin="other", status="mine"))
    assert json.loads(store.get_link("jira-sync", "jira", "J-1").snapshot)["status"] == "open"

    # put_link replaces.
    store.put_link(link(task.id, status="closed"))
    assert json.loads(store.get_link("jira-sync", "jira", "J-1").snapshot) == {"status": "closed"}
    assert len(store.links_for_task("jira-sync", task.id)) == 1

    store.delete_link("jira-sync", "jira", "J-1")
    with pytest.raises(NotFound):
        store.delete_link("jira-sync", "jira", "J-1")
    assert store.links_for_task("other", task.id) != []


def test_get_links_reads_many_keys_at_once(store: SQLiteTaskStore) -> None:
    tasks = store.put_many([{"title": f"t{i}"} for i in range(1200)], actor="host")
    for i, task in enumerate(tasks):
        store.put_link(link(task.id, f"J-{i}", n=i))
    store.put_link(link(tasks[0].id, "J-5000", plugin="other"))
    # More keys than one IN list takes; unknown, repeated and other plugins' keys are skipped.
    wanted = [f"J-{i}" for i in range(0, 1200, 2)] + ["J-5000", "J-0", "J-missing"]
    found = store.get_links("jira-sync", "jira", wanted)
    assert sorted(x.external_key for x in found) == sorted(f"J-{i}" for i in range(0, 1200, 2))
    assert {x.external_key: x for x in found}["J-4"] == store.get_link("jira-sync", "jira", "J-4")
    assert store.get_links("jira-sync", "github", wanted) == []
    assert store.get_links("jira-sync", "jira", []) == []


def test_links_for_task_reads_that_tasks_links_not_all_of_the_plugins(tmp_path: Path) -> None:
    def steps_to_read_links(links: int) -> int:
        """SQLite VM steps of one `links_for_task`, in a store where the plugin has `links`."""
        store = SQLiteTaskStore(tmp_path / f"{links}.db")
        try:
            linked = {"system": "jira", "snapshot": {}}
            items = [
                {"id": f"t{i}", "title": "t", "link": {**linked, "external_key": str(i)}}
                for i in range(links)
            ]
            store.put_many(items, actor="jira-sync")
            store.put_link(link("t0", "J-x", plugin="jira-sync"))
            found, steps = vm_steps(store._db, lambda: store.links_for_task("jira-sync", "t0"))
            assert [(x.system, x.external_key) for x in found] == [("jira", "0"), ("jira", "J-x")]
            return steps
        finally:
            store.close()

    # An index lookup: the same work whatever the plugin's other links (a scan grows with them).
    assert steps_to_read_links(3000) < 2 * steps_to_read_links(30)


def test_put_link_checks_task_and_snapshot(store: SQLiteTaskStore) -> None:
    with pytest.raises(NotFound, match='task "missing" does not exist'):
        store.put_link(link("missing"))
    [task] = store.put_many([{"title": "t"}], actor="host")
    bad = Link(plugin="p", system="jira", external_key="J-1", task_id=task.id, snapshot="{oops")
    with pytest.raises(InvalidInput, match=r"^link\.snapshot: not JSON text"):
        store.put_link(bad)
    with pytest.raises(InvalidInput, match=r"^link\.external_key: must not be empty$"):
        store.put_link(link(task.id, key=""))


def test_deleting_a_task_deletes_its_links(store: SQLiteTaskStore) -> None:
    keep, doomed = store.put_many([{"title": "keep"}, {"title": "doomed"}], actor="host")
    store.put_link(link(keep.id, "J-1"))
    store.put_link(link(doomed.id, "J-2"))
    store.put_link(link(doomed.id, "J-2", plugin="other"))
    store.delete(doomed.id, None, actor="host")
    for plugin in ("jira-sync", "other"):
        with pytest.raises(NotFound):
            store.get_link(plugin, "jira", "J-2")
        assert store.links_for_task(plugin, doomed.id) == []
    assert store.get_link("jira-sync", "jira", "J-1").task_id == keep.id


def test_put_many_writes_tasks_and_their_links_in_one_batch(store: SQLiteTaskStore) -> None:
    [old] = store.put_many([{"title": "old"}], actor="host")
    feed = len(store.changes_since(None, 100).items)
    new, relinked = store.put_many(
        [
            {"id": "n", "title": "new", "link": {"system": "jira", "external_key": "J-1",
                                                 "snapshot": {"base": {"title": "new"}}}},
            {"id": old.id, "expected_version": 1,
             "link": {"system": "jira", "external_key": "J-2", "snapshot": '{"v": 2}'}},
        ],
        actor="jira-sync",
    )  # fmt: skip

    assert json.loads(store.get_link("jira-sync", "jira", "J-1").snapshot) == {
        "base": {"title": "new"}
    }
    assert store.get_link("jira-sync", "jira", "J-2").task_id == old.id
    # A link-only item leaves its task as it was: same version, no change in the feed.
    assert relinked == old and store.get(old.id).version == 1
    assert len(store.changes_since(None, 100).items) == feed + 1
    assert new.id == "n" and new.version == 1


def test_put_many_links_fail_the_whole_batch(store: SQLiteTaskStore) -> None:
    link_to = {"system": "jira", "external_key": "J-9", "snapshot": {}}
    with pytest.raises(NotFound, match=r'^tasks\[1\]\.id: task "gone" does not exist$'):
        store.put_many([{"title": "a"}, {"id": "gone", "link": link_to}], actor="p")
    with pytest.raises(InvalidInput, match=r"^tasks\[0\]\.link\.snapshot: not JSON text"):
        store.put_many([{"title": "a", "link": {**link_to, "snapshot": "{oops"}}], actor="p")
    with pytest.raises(InvalidInput, match=r"^tasks\[0\]\.link\.system: required$"):
        store.put_many([{"title": "a", "link": {"external_key": "J", "snapshot": {}}}], actor="p")
    with pytest.raises(InvalidInput, match=r"^tasks\[0\]\.id: required for an item that only"):
        store.put_many([{"link": link_to}], actor="p")
    assert store.query(TaskFilter(), None, 10).items == []
    with pytest.raises(NotFound):
        store.get_link("p", "jira", "J-9")


# --- change feed ---------------------------------------------------------------------------------


def test_change_feed_records_creates_updates_and_tombstones(store: SQLiteTaskStore) -> None:
    [task] = store.put_many([{"title": "t"}], actor="host")
    [updated] = store.put_many([{"id": task.id, "status": "done"}], actor="jira-sync")
    store.delete(task.id, 2, actor="host")
    changes = all_changes(store)
    assert [(c.op, c.actor, c.version, c.task_id) for c in changes] == [
        ("create", "host", 1, task.id),
        ("update", "jira-sync", 2, task.id),
        ("delete", "host", 2, task.id),
    ]
    assert [c.seq for c in changes] == [1, 2, 3]
    assert changes[0].task == task.to_json()
    assert changes[1].task == updated.to_json()
    assert changes[2].task is None and TIMESTAMP.fullmatch(changes[2].at)
    assert changes[2].to_json() == {
        "seq": 3,
        "task_id": task.id,
        "op": "delete",
        "actor": "host",
        "at": changes[2].at,
        "version": 2,
        "task": None,
    }


def test_change_feed_leaves_the_readers_own_changes_bare(store: SQLiteTaskStore) -> None:
    [task] = store.put_many([{"title": "t"}], actor="host")
    [updated] = store.put_many([{"id": task.id, "status": "done"}], actor="jira-sync")
    changes = store.changes_since(None, 10, bare_actor="jira-sync").items
    assert [(c.actor, c.version, c.task_id) for c in changes] == [
        ("host", 1, task.id),
        ("jira-sync", 2, task.id),
    ]
    assert changes[0].task == task.to_json()
    assert changes[1].task is None
    assert store.changes_since(None, 10, bare_actor="host").items[1].task == updated.to_json()


def test_change_cursor_resumes_and_survives_reopening(tmp_path: Path) -> None:
    store = SQLiteTaskStore(tmp_path / "tasks.db")
    store.put_many([{"title": str(i)} for i in range(5)], actor="host")
    first = store.changes_since(None, 3)
    assert [c.seq for c in first.items] == [1, 2, 3]
    rest = store.changes_since(first.next_cursor, 3)
    assert [c.seq for c in rest.items] == [4, 5]
    caught_up = store.changes_since(rest.next_cursor, 3)
    assert caught_up.items == [] and caught_up.next_cursor is None
    store.close()

    reopened = SQLiteTaskStore(tmp_path / "tasks.db")
    reopened.put_many([{"title": "later"}], actor="host")
    assert [c.seq for c in reopened.changes_since(rest.next_cursor, 3).items] == [6]
    reopened.close()


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteTaskStore(tmp_path / "tasks.db")
    store.close()
    with pytest.raises(Unavailable, match="task store is closed"):
        store.get("x")


# --- concurrency ---------------------------------------------------------------------------------

# Each writer creates its own tasks, updates every other one and deletes every fourth, all with
# expected_version, so the writes it made are known exactly.
WRITER = """
def write(store, actor, rounds, size):
    for r in range(rounds):
        tasks = store.put_many(
            [{"id": f"{actor}-{r}-{i}", "title": f"{actor} {r} {i}"} for i in range(size)],
            actor=actor,
        )
        store.put_many(
            [{"id": t.id, "status": "done", "expected_version": 1} for t in tasks[::2]],
            actor=actor,
        )
        for t in tasks[::4]:
            store.delete(t.id, 2, actor=actor)
"""
ROUNDS, SIZE = 8, 12
WRITES_PER_ACTOR = ROUNDS * (SIZE + SIZE // 2 + SIZE // 4)

CHILD = (
    WRITER
    + """
import sys
from corral.tasks import SQLiteTaskStore
store = SQLiteTaskStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
write(store, "process", int(sys.argv[2]), int(sys.argv[3]))
store.close()
"""
)
# The same code runs in the threads of this process.
namespace: dict[str, Any] = {}
exec(WRITER, namespace)
write = namespace["write"]


def test_concurrent_writers_and_a_following_reader(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    store = SQLiteTaskStore(path)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(ROUNDS), str(SIZE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout and child.stdin
    assert child.stdout.readline() == "ready\n"

    seen: list[Change] = []
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        cursor = None
        try:
            while True:
                done = writers_done.is_set()  # read before polling, so a final empty poll is final
                page = store.changes_since(cursor, 17)
                seen.extend(page.items)
                cursor = page.next_cursor or cursor
                if done and page.next_cursor is None:
                    return
        except BaseException as exc:
            errors.append(exc)

    def run(actor: str) -> None:
        try:
            write(store, actor, ROUNDS, SIZE)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=follow)
    threads = [threading.Thread(target=run, args=(f"thread{n}",)) for n in range(3)]
    reader.start()
    child.stdin.write("go\n")
    child.stdin.flush()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert child.wait(timeout=60) == 0
    writers_done.set()
    reader.join()
    assert errors == []

    # Every change exactly once, in seq order, with no gaps.
    assert [c.seq for c in seen] == list(range(1, len(seen) + 1))
    actors = ["process", "thread0", "thread1", "thread2"]
    assert Counter(c.actor for c in seen) == dict.fromkeys(actors, WRITES_PER_ACTOR)
    assert seen == all_changes(store)

    # Replaying the feed gives the tasks table.
    replayed: dict[str, dict[str, Any] | None] = {}
    for change in seen:
        replayed[change.task_id] = change.task
    final = {task.id: task.to_json() for task in all_tasks(store)}
    assert {k: v for k, v in replayed.items() if v is not None} == final
    assert len(final) == 4 * ROUNDS * (SIZE - SIZE // 4)
    store.close()


# --- crash ---------------------------------------------------------------------------------------

CRASHER = """
import sys
from corral.tasks import SQLiteTaskStore
store = SQLiteTaskStore(sys.argv[1])
item = {"description": "x" * 200, "labels": ["crash"]}
items = [{"title": f"crash {i}", **item} for i in range(int(sys.argv[2]))]
print("begin", flush=True)
store.put_many(items, actor="crasher")
print("committed", flush=True)
"""


def holds_write_lock(path: Path) -> bool:
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    finally:
        probe.close()


def test_writer_killed_mid_transaction_leaves_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    wal = tmp_path / "tasks.db-wal"
    store = SQLiteTaskStore(path)
    before = store.put_many([{"title": f"before {i}"} for i in range(10)], actor="host")
    store.close()  # the last connection out checkpoints and removes the WAL
    assert not wal.exists()

    child = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(path), "40000"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout and child.stdout.readline() == "begin\n"
    # Kill once the transaction holds the write lock and has spilled uncommitted pages into
    # the WAL: that is a crash in the middle of writing the batch.
    deadline = time.monotonic() + 30
    while not (wal.exists() and wal.stat().st_size > 1 << 20 and holds_write_lock(path)):
        assert child.poll() is None, "the batch finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert check.execute("PRAGMA foreign_key_check").fetchall() == []
    check.close()

    store = SQLiteTaskStore(path)
    tasks = all_tasks(store)
    crashed = [t for t in tasks if t.title.startswith("crash")]
    assert len(crashed) in (0, 40000)
    assert [t for t in tasks if not t.title.startswith("crash")] == sorted(before, key=by_id)
    # The feed agrees with the table: one create per task, nothing else.
    changes = all_changes(store)
    assert [c.seq for c in changes] == list(range(1, len(changes) + 1))
    assert {c.task_id for c in changes} == {t.id for t in tasks}
    assert {c.op for c in changes} == {"create"} and len(changes) == len(tasks)
    # The store still works, and the feed carries on without a gap.
    store.put_many([{"title": "after"}], actor="host")
    assert all_changes(store)[-1].seq == len(changes) + 1
    store.close()
