"""``corral tasks``: list and edit the host's tasks from the command line.

`add_tasks_parser` adds the command; each subcommand sets ``tasks_handler(args, store)``, which
prints its result and returns the exit code. Errors are raised as Corral errors, for the
caller to report.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from corral._cli_output import print_table
from corral._errors import InvalidInput

from .model import Task, TaskFilter
from .store import MAX_LIMIT, TaskStore

__all__ = ["add_tasks_parser"]

# The change feed's actor for writes made here: the host application, not a plugin.
_ACTOR = "host"
# Options that set a task field: (flag, field, help).
_FIELD_OPTIONS = (
    ("--title", "title", "the title"),
    ("--description", "description", "the description"),
    ("--status", "status", "the status (new tasks: todo)"),
    ("--priority", "priority", "the priority (new tasks: medium)"),
    ("--assignee", "assignee", "the assignee"),
    ("--label", "labels", "the labels (repeat for several)"),
    ("--due", "due_date", "the due date, YYYY-MM-DD"),
)


def add_tasks_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``tasks`` command (list, show, create, edit, delete) to `subparsers`."""
    tasks = subparsers.add_parser("tasks", help="list and edit the host's tasks")
    commands = tasks.add_subparsers(dest="tasks_command", metavar="COMMAND", required=True)

    list_ = commands.add_parser("list", help="list tasks, least recently updated first")
    list_.add_argument("--status", help="only tasks with this status")
    list_.add_argument("--assignee", help="only tasks assigned to this person")
    list_.add_argument("--label", help="only tasks with this label")
    list_.add_argument("--json", action="store_true", help="print a JSON array")
    list_.set_defaults(tasks_handler=_list)

    show = commands.add_parser("show", help="show one task")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the task's JSON object")
    show.set_defaults(tasks_handler=_show)

    create = commands.add_parser("create", help="create a task")
    _add_field_options(create, creating=True)
    create.set_defaults(tasks_handler=_create)

    edit = commands.add_parser("edit", help="change fields of a task")
    edit.add_argument("id")
    _add_field_options(edit, creating=False)
    edit.add_argument(
        "--expected-version",
        type=int,
        metavar="N",
        help="fail unless the task is at this version",
    )
    edit.set_defaults(tasks_handler=_edit)

    delete = commands.add_parser("delete", help="delete a task")
    delete.add_argument("id")
    delete.set_defaults(tasks_handler=_delete)


def _add_field_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    verb = "set" if creating else "replace"
    for flag, name, what in _FIELD_OPTIONS:
        parser.add_argument(
            flag,
            dest=name,
            metavar=flag.removeprefix("--").upper(),
            action="append" if name == "labels" else "store",
            required=creating and name == "title",
            help=f"{verb} {what}",
        )


def _given_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, name)
        for _, name, _ in _FIELD_OPTIONS
        if getattr(args, name) is not None
    }


def _list(args: argparse.Namespace, store: TaskStore) -> int:
    task_filter = TaskFilter(status=args.status, assignee=args.assignee, label=args.label)
    tasks: list[Task] = []
    cursor: str | None = None
    while True:
        page = store.query(task_filter, cursor, MAX_LIMIT)
        tasks += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    if args.json:
        print(json.dumps([task.to_json() for task in tasks], indent=2))
    elif tasks:
        print_table(
            ("ID", "STATUS", "PRIORITY", "ASSIGNEE", "DUE", "TITLE"),
            ((t.id, t.status, t.priority, t.assignee, t.due_date, t.title) for t in tasks),
        )
    else:
        print("no tasks")
    return 0


def _show(args: argparse.Namespace, store: TaskStore) -> int:
    task = store.get(args.id).to_json()
    if args.json:
        print(json.dumps(task, indent=2))
        return 0
    for name, value in task.items():
        if value in (None, "", [], {}):
            text = "-"
        elif isinstance(value, list):
            text = ", ".join(value)
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value)
        print(f"{name + ':':<15}{text}")
    return 0


def _create(args: argparse.Namespace, store: TaskStore) -> int:
    [task] = store.put_many([_given_fields(args)], actor=_ACTOR)
    print(f"created task {task.id}")
    return 0


def _edit(args: argparse.Namespace, store: TaskStore) -> int:
    fields = _given_fields(args)
    if not fields:
        flags = ", ".join(flag for flag, _, _ in _FIELD_OPTIONS)
        raise InvalidInput(f"tasks edit: nothing to change; give one of {flags}")
    # `put_many` would create a missing task; editing one that is not there is an error.
    current = store.get(args.id)
    # Without --expected-version, check against the version just read: a task deleted
    # meanwhile must not come back with only these fields (a concurrent edit conflicts too).
    expected = current.version if args.expected_version is None else args.expected_version
    [task] = store.put_many([{"id": args.id, **fields, "expected_version": expected}], actor=_ACTOR)
    print(f"updated task {task.id} (version {task.version})")
    return 0


def _delete(args: argparse.Namespace, store: TaskStore) -> int:
    store.delete(args.id, None, actor=_ACTOR)
    print(f"deleted task {args.id}")
    return 0
