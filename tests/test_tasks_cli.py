"""`corral tasks ...`: the argparse parser and handlers, run against a real SQLite store."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral._errors import Conflict, InvalidInput, NotFound
from corral._exit import UsageError
from corral.tasks import SQLiteTaskStore
from corral.tasks.cli import add_tasks_parser


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteTaskStore]:
    store = SQLiteTaskStore(tmp_path / "tasks.db")
    yield store
    store.close()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corral")
    add_tasks_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["tasks", *argv])


def run(store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    args = parse(*argv)
    assert args.tasks_handler(args, store) == 0
    return capsys.readouterr().out


def create(store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    out = run(store, capsys, "create", *argv)
    assert out.startswith("created task ")
    return out.split()[-1]


def test_create_and_show(store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = create(
        store,
        capsys,
        *("--title", "Fix login", "--description", "500 on submit", "--status", "doing"),
        *("--priority", "high", "--assignee", "ana", "--label", "bug", "--label", "auth"),
        *("--due", "2024-03-01"),
    )
    shown = json.loads(run(store, capsys, "show", task_id, "--json"))
    assert shown == store.get(task_id).to_json()
    assert shown["labels"] == ["bug", "auth"] and shown["due_date"] == "2024-03-01"

    lines = run(store, capsys, "show", task_id).splitlines()
    assert f"id:            {task_id}" in lines
    assert "labels:        bug, auth" in lines
    assert "custom_fields: -" in lines
    assert "version:       1" in lines
    [change] = store.changes_since(None, 10).items
    assert change.actor == "host"


def test_list_table_filters_and_json(
    store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(store, capsys, "list") == "no tasks\n"
    first = create(store, capsys, "--title", "First", "--assignee", "ana", "--label", "bug")
    second = create(
        store, capsys, "--title", "Second task", "--status", "done", "--due", "2024-01-02"
    )

    header, *rows = run(store, capsys, "list").splitlines()
    assert header.split() == ["ID", "STATUS", "PRIORITY", "ASSIGNEE", "DUE", "TITLE"]
    assert rows == [
        f"{first}  todo    medium    ana       -           First",
        f"{second}  done    medium    -         2024-01-02  Second task",
    ]
    assert [
        row.split()[0] for row in run(store, capsys, "list", "--status", "done").splitlines()[1:]
    ] == [second]
    assert run(store, capsys, "list", "--assignee", "bo") == "no tasks\n"
    listed = json.loads(run(store, capsys, "list", "--label", "bug", "--json"))
    assert [task["id"] for task in listed] == [first]


def test_edit(store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = create(store, capsys, "--title", "Draft", "--label", "a", "--assignee", "ana")
    out = run(store, capsys, "edit", task_id, "--title", "Final", "--label", "b", "--label", "c")
    assert out == f"updated task {task_id} (version 2)\n"
    task = store.get(task_id)
    assert (task.title, task.labels, task.assignee) == ("Final", ["b", "c"], "ana")

    args = parse("edit", task_id, "--status", "done", "--expected-version", "1")
    with pytest.raises(Conflict, match="is at version 2, not the expected version 1"):
        args.tasks_handler(args, store)
    out = run(store, capsys, "edit", task_id, "--status", "done", "--expected-version", "2")
    assert out.endswith("(version 3)\n")

    for argv, error, message in [
        (("edit", "missing", "--title", "x"), NotFound, 'task "missing" does not exist'),
        (("edit", task_id), UsageError, "nothing to change; give one of --title, .*--clear$"),
        (("edit", task_id, "--due", "soon"), InvalidInput, r'due_date: "soon" is not a date'),
    ]:
        args = parse(*argv)
        with pytest.raises(error, match=message):
            args.tasks_handler(args, store)
    assert store.get(task_id).version == 3


def test_edit_clears_fields(store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--title", "T", "--description", "d", "--assignee", "ana", "--due", "2024-03-01")
    task_id = create(store, capsys, *argv, "--label", "a")
    run(store, capsys, "edit", task_id, "--assignee", "", "--due", "")
    task = store.get(task_id)
    assert (task.assignee, task.due_date, task.labels) == (None, None, ["a"])
    run(store, capsys, "edit", task_id, "--clear", "labels", "--clear", "description")
    task = store.get(task_id)
    assert (task.labels, task.description, task.title, task.version) == ([], "", "T", 3)

    args = parse("edit", task_id, "--clear", "labels", "--label", "b")
    with pytest.raises(UsageError, match="--clear labels and --label contradict each other"):
        args.tasks_handler(args, store)
    for refused in (("--clear", "title"), ("--clear", "status"), ("--status", " ")):
        with pytest.raises(SystemExit) as exited:
            parse("edit", task_id, *refused)
        assert exited.value.code == 2
    assert store.get(task_id).version == 3


def test_status_and_priority_values_are_documented(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse("create", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "any non-empty text, such as todo, in_progress, done (new: todo)" in text
    assert "such as lowest, low, medium, high, critical (new: medium)" in text
    with pytest.raises(SystemExit):
        parse("create", "--title", "x", "--priority", "")
    assert capsys.readouterr().err.endswith(
        "argument --priority: must not be empty; any text, such as lowest, low, medium, high, "
        "critical\n"
    )


def test_delete(store: SQLiteTaskStore, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = create(store, capsys, "--title", "Doomed")
    run(store, capsys, "edit", task_id, "--status", "done")
    args = parse("delete", task_id, "--expected-version", "1")
    with pytest.raises(Conflict, match="is at version 2, not the expected version 1"):
        args.tasks_handler(args, store)
    assert store.get(task_id).version == 2
    run(store, capsys, "delete", task_id, "--expected-version", "2")
    task_id = create(store, capsys, "--title", "Doomed")
    assert run(store, capsys, "delete", task_id) == f"deleted task {task_id}\n"
    args = parse("show", task_id)
    with pytest.raises(NotFound):
        args.tasks_handler(args, store)
    args = parse("delete", task_id)
    with pytest.raises(NotFound):
        args.tasks_handler(args, store)


def test_create_needs_a_title() -> None:
    with pytest.raises(SystemExit):
        parse("create", "--status", "todo")
