"""``corral tasks``: list and edit the host's tasks from the command line.

`add_tasks_parser` adds the command; each subcommand sets ``tasks_handler(args, store)``, which
prints its result and returns the exit code. Errors are raised as Corral errors, for the
caller to report.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from corral._cli_output import print_table
from corral._exit import UsageError

from .model import Task, TaskFilter
from .store import MAX_LIMIT, TaskStore

__all__ = ["add_tasks_parser"]

# The change feed's actor for writes made here: the host application, not a plugin.
_ACTOR = "host"
# The store takes any non-empty status and priority; these are the values Corral's own defaults
# and jira-sync's value maps use, so tasks from both read alike.
_STATUSES = "todo, in_progress, done"
_PRIORITIES = "lowest, low, medium, high, critical"
# Options that set a task field: (flag, field, help). An empty value clears the fields that
# may be empty (--assignee '', --due ''), as --clear does.
_FIELD_OPTIONS = (
    ("--title", "title", "the title"),
    ("--description", "description", "the description"),
    ("--status", "status", f"the status: any non-empty text, such as {_STATUSES} (new: todo)"),
    (
        "--priority", "priority",
        f"the priority: any non-empty text, such as {_PRIORITIES} (new: medium)",
    ),
    ("--assignee", "assignee", "the assignee ('' for none)"),
    ("--label", "labels", "the labels (repeat for several)"),
    ("--due", "due_date", "the due date, YYYY-MM-DD ('' for none)"),
)  # fmt: skip
# What --clear empties: flag name -> (field, its empty value).
_CLEARABLE: dict[str, tuple[str, Any]] = {
    "description": ("description", ""),
    "assignee": ("assignee", None),
    "labels": ("labels", []),
    "due": ("due_date", None),
}
_EPILOG = (
    f"Status and priority are free text (the store does not restrict them); by convention "
    f"status is one of {_STATUSES} and priority one of {_PRIORITIES}."
)


def add_tasks_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``tasks`` command (list, show, create, edit, delete) to `subparsers`."""
    tasks = subparsers.add_parser("tasks", help="list and edit the host's tasks", epilog=_EPILOG)
    commands = tasks.add_subparsers(dest="tasks_command", metavar="COMMAND", required=True)

    list_ = commands.add_parser(
        "list", help="list tasks, least recently updated first", epilog=_EPILOG
    )
    list_.add_argument("--status", help=f"only tasks with this status ({_STATUSES}, ...)")
    list_.add_argument("--assignee", help="only tasks assigned to this person")
    list_.add_argument("--label", help="only tasks with this label")
    list_.add_argument("--json", action="store_true", help="print a JSON array")
    list_.set_defaults(tasks_handler=_list)

    show = commands.add_parser("show", help="show one task")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the task's JSON object")
    show.set_defaults(tasks_handler=_show)

    create = commands.add_parser("create", help="create a task", epilog=_EPILOG)
    _add_field_options(create, creating=True)
    create.set_defaults(tasks_handler=_create)

    edit = commands.add_parser("edit", help="change fields of a task", epilog=_EPILOG)
    edit.add_argument("id")
    _add_field_options(edit, creating=False)
    edit.add_argument(
        "--clear",
        action="append",
        choices=list(_CLEARABLE),
        metavar="FIELD",
        help=f"empty FIELD (repeatable): {', '.join(_CLEARABLE)}",
    )
    _add_expected_version(edit)
    edit.set_defaults(tasks_handler=_edit)

    delete = commands.add_parser("delete", help="delete a task")
    delete.add_argument("id")
    _add_expected_version(delete)
    delete.set_defaults(tasks_handler=_delete)


def _add_expected_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expected-version",
        type=int,
        metavar="N",
        help="fail unless the task is at this version (as `show` prints it)",
    )


def _add_field_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    verb = "set" if creating else "replace"
    for flag, name, what in _FIELD_OPTIONS:
        parser.add_argument(
            flag,
            dest=name,
            metavar=flag.removeprefix("--").upper(),
            action="append" if name == "labels" else "store",
            required=creating and name == "title",
            type=_NON_EMPTY.get(name, str),
            help=f"{verb} {what}",
        )


def _non_empty(examples: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"must not be empty; any text, such as {examples}")
        return value

    return parse


_NON_EMPTY = {"status": _non_empty(_STATUSES), "priority": _non_empty(_PRIORITIES)}


def _given_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = {}
    for _, name, _ in _FIELD_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            fields[name] = None if value == "" and name in ("assignee", "due_date") else value
    for flag in getattr(args, "clear", None) or []:
        name, empty = _CLEARABLE[flag]
        if fields.get(name, empty) != empty:
            raise UsageError(f"--clear {flag} and --{flag.removesuffix('s')} contradict each other")
        fields[name] = empty
    return fields


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
        flags = ", ".join([*(flag for flag, _, _ in _FIELD_OPTIONS), "--clear"])
        raise UsageError(f"tasks edit: nothing to change; give one of {flags}")
    # `put_many` would create a missing task; editing one that is not there is an error.
    current = store.get(args.id)
    # Without --expected-version, check against the version just read: a task deleted
    # meanwhile must not come back with only these fields (a concurrent edit conflicts too).
    expected = current.version if args.expected_version is None else args.expected_version
    [task] = store.put_many([{"id": args.id, **fields, "expected_version": expected}], actor=_ACTOR)
    print(f"updated task {task.id} (version {task.version})")
    return 0


def _delete(args: argparse.Namespace, store: TaskStore) -> int:
    store.delete(args.id, args.expected_version, actor=_ACTOR)
    print(f"deleted task {args.id}")
    return 0
