"""The host application's tasks: the model, the `TaskStore` protocol and its SQLite default.

Plugins reach tasks through the ``tasks`` host functions; a host application either uses
`SQLiteTaskStore` or implements `TaskStore` over its own database.
"""

from __future__ import annotations

from .model import (
    TASK_FIELDS,
    Change,
    ChangeOp,
    JSONValue,
    Link,
    Page,
    Task,
    TaskFilter,
    TaskUpsert,
    check_version,
    format_timestamp,
)
from .sqlite import SQLiteTaskStore
from .store import MAX_LIMIT, TaskStore, WriteBounds, clamp_limit

__all__ = [
    "MAX_LIMIT",
    "TASK_FIELDS",
    "Change",
    "ChangeOp",
    "JSONValue",
    "Link",
    "Page",
    "SQLiteTaskStore",
    "Task",
    "TaskFilter",
    "TaskStore",
    "TaskUpsert",
    "WriteBounds",
    "check_version",
    "clamp_limit",
    "format_timestamp",
]
