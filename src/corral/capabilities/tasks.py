"""`tasks`: the host application's tasks, read and written by plugins as JSON text.

Bulk values cross as JSON strings: wasmtime-py converts typed component values one Python
object at a time, which for 10,000 task records is over ten times slower than one string.

A `put-many` is bounded in items and bytes, so one host call stays short; it is stored only if
it commits before the call's deadline, and only within the plugin's task quota.
`start-put-many`/`finish-put-many` write the same batch on a host thread while the plugin
prepares the next one (`._started`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .._errors import ConfigError, InvalidInput
from .._units import format_size, parse_size, positive_size
from .._validation import validate_model
from ..tasks import TASK_FIELDS, Link, Task, TaskFilter, WriteBounds
from ._base import CallContext, Capability, HostFunction, PluginContext
from ._started import Started, Workers
from ._wit import record

__all__ = ["TasksCapability", "TasksOptions"]

_ANSWER_S_PER_TASK = 25e-6
"""Time kept per task of a batch for answering once it is stored: the audit line and the JSON
answer took about 9 µs a task for 20,000 tasks; a batch at the default cap keeps 25 ms."""

READ = "task.read"
WRITE = "task.write"


class TasksOptions(BaseModel):
    """Operator options under ``plugins.<name>.tasks``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_items: int = Field(default=1000, ge=1)
    """Tasks per `put-many`."""
    max_batch_bytes: Annotated[str, AfterValidator(positive_size)] = "8MB"
    """JSON text per `put-many`."""
    max_tasks: int | None = Field(default=None, ge=0)
    """The most tasks the plugin may have created (and not deleted); unset: no quota."""


MAX_STARTED = 2
"""Batches one call may have started with `start-put-many` and not yet finished: one being
written while the next is prepared is all the overlap there is."""
_STARTED = "tasks.started"


@dataclass(frozen=True)
class _TasksState:
    context: PluginContext
    options: TasksOptions
    max_batch_bytes: int
    workers: Workers

    def started(self, call: CallContext) -> Started[str]:
        """The batches `call` started and has not finished; the call ends only once they are
        written (or refused), so none outlives it."""
        started = call.state.get(_STARTED)
        if not isinstance(started, Started):
            started = call.state[_STARTED] = Started(self.workers, MAX_STARTED, "batches")
            call.at_end(lambda: started.wait_all(call.remaining()))
        return started

    def setting(self, key: str) -> str:
        """Where the operator sets ``plugins.<name>.tasks.<key>``."""
        return self.context.origin.where(f"plugins.{self.context.name}.tasks.{key}")

    @property
    def quota_setting(self) -> str:
        return self.setting("max_tasks")


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not JSON: {exc.msg} at position {exc.pos}") from None


def _projection(raw: dict[str, Any]) -> tuple[str, ...] | None:
    """Pop a query filter's ``fields`` (the task keys to return) off `raw`: a sync that needs
    only ids of 10,000 tasks is spared encoding and parsing them whole."""
    if "fields" not in raw:
        return None
    fields = raw.pop("fields")
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        raise InvalidInput("filter.fields: expected an array of task field names")
    unknown = sorted(set(fields) - set(TASK_FIELDS))
    if unknown:
        raise InvalidInput(
            f'filter.fields: "{unknown[0]}" is not a task field; use {", ".join(TASK_FIELDS)}'
        )
    return tuple(dict.fromkeys(fields))


def _task_item(task: Task, fields: tuple[str, ...] | None) -> dict[str, Any]:
    if fields is None:
        return task.to_json()
    return {name: getattr(task, name) for name in fields}


def _link_value(link: Link) -> object:
    return record(
        task_id=link.task_id,
        system=link.system,
        external_key=link.external_key,
        snapshot=link.snapshot,
    )


def _attach_links(items: list[dict[str, Any]], links: list[Link]) -> None:
    """Give each task of a ``links`` query the links that matched, as `links` (snapshots as
    JSON text, as in the `link` record): a sync looks up a page of external keys and gets
    each one's task and base in one call instead of two calls per key."""
    found: dict[str, list[dict[str, str]]] = {item["id"]: [] for item in items}
    for link in sorted(links, key=lambda link: link.external_key):
        # A link moved to a task outside this page after the query read it is left out.
        if link.task_id in found:
            found[link.task_id].append(
                {
                    "system": link.system,
                    "external_key": link.external_key,
                    "snapshot": link.snapshot,
                }
            )
    for item in items:
        item["links"] = found[item["id"]]


class TasksCapability(Capability):
    name = "tasks"
    permissions = (READ, WRITE)
    permission_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {"task.read_write": (READ, WRITE)}
    option_types: ClassVar[Mapping[str, Any]] = {"tasks": TasksOptions}

    def configure(self, plugin: PluginContext) -> _TasksState:
        options = validate_model(
            TasksOptions,
            plugin.options.get("tasks") or {},
            f"plugins.{plugin.name}.tasks",
            ConfigError,
        )
        # One worker: started batches are written in the order they were started.
        workers = Workers(f"corral-tasks-{plugin.name}", max_workers=1)
        return _TasksState(plugin, options, parse_size(options.max_batch_bytes), workers)

    def host_functions(self, state: _TasksState) -> list[HostFunction]:
        services = state.context.services
        plugin = state.context.name
        options = state.options

        def get(call: CallContext, task_id: str) -> str:
            return json.dumps(services.task_store.get(task_id).to_json())

        def query(call: CallContext, filter_json: str, cursor: str | None, limit: int) -> object:
            raw = _parse_json(filter_json or "{}", "the task filter")
            if not isinstance(raw, dict):
                raise InvalidInput("the task filter must be a JSON object")
            fields = _projection(raw)
            # "linked"/"unlinked" name a system; links are always the calling plugin's own.
            task_filter = TaskFilter.from_json(raw, plugin=plugin)
            page = services.task_store.query(task_filter, cursor, limit)
            items = [_task_item(task, fields) for task in page.items]
            system, keys = task_filter.linked_system, task_filter.linked_keys
            if system is not None and keys is not None and items:
                _attach_links(items, services.task_store.get_links(plugin, system, keys))
            return record(items=json.dumps(items), next_cursor=page.next_cursor)

        def check_size(tasks_json: str) -> None:
            size = len(tasks_json.encode("utf-8", "surrogatepass"))
            if size > state.max_batch_bytes:
                raise InvalidInput(
                    f"the task batch is {format_size(size)} of JSON; the most per put-many is "
                    f"{format_size(state.max_batch_bytes)} ({state.setting('max_batch_bytes')})"
                )

        def put_many(call: CallContext, tasks_json: str) -> str:
            check_size(tasks_json)
            return write(call, tasks_json)

        def start_put_many(call: CallContext, tasks_json: str) -> int:
            check_size(tasks_json)
            return state.started(call).start(partial(write, call, tasks_json))

        def finish_put_many(call: CallContext, handle: int) -> str:
            return state.started(call).finish(handle, call.remaining(), "finish-put-many")

        def write(call: CallContext, tasks_json: str) -> str:
            items = _parse_json(tasks_json, "the task batch")
            if not isinstance(items, list):
                raise InvalidInput("the task batch must be a JSON array of task objects")
            if len(items) > options.max_batch_items:
                raise InvalidInput(
                    f"the task batch has {len(items)} tasks; the most per put-many is "
                    f"{options.max_batch_items} ({state.setting('max_batch_items')})"
                )
            # After the commit this function still answers (an audit line with every id, the
            # stored tasks as JSON), in time that grows with the batch: the store must commit
            # early enough to leave it, or a large batch committed just inside the deadline
            # would end in a timeout with its writes kept.
            deadline = call.deadline - len(items) * _ANSWER_S_PER_TASK
            bounds = WriteBounds(deadline, options.max_tasks, state.quota_setting)
            stored = services.task_store.put_many(items, actor=plugin, bounds=bounds)
            services.audit.record("task.write", plugin, tasks=[[t.id, t.version] for t in stored])
            return json.dumps([task.to_json() for task in stored])

        def delete(call: CallContext, task_id: str, expected_version: int | None) -> None:
            services.task_store.delete(task_id, expected_version, actor=plugin)
            services.audit.record(
                "task.delete", plugin, task_id=task_id, expected_version=expected_version
            )

        def changes_since(call: CallContext, cursor: str | None, limit: int) -> object:
            # The plugin's own changes without their task: it wrote them, and skips them.
            page = services.task_store.changes_since(cursor, limit, bare_actor=plugin)
            items = json.dumps([change.to_json() for change in page.items])
            return record(items=items, next_cursor=page.next_cursor)

        def get_link(call: CallContext, system: str, external_key: str) -> object:
            return _link_value(services.task_store.get_link(plugin, system, external_key))

        def links_for_task(call: CallContext, task_id: str) -> list[object]:
            return [_link_value(x) for x in services.task_store.links_for_task(plugin, task_id)]

        def put_link(call: CallContext, link: Any) -> None:
            _parse_json(link.snapshot, "the link snapshot")
            stored = Link(
                plugin=plugin,
                system=link.system,
                external_key=getattr(link, "external-key"),
                task_id=getattr(link, "task-id"),
                snapshot=link.snapshot,
            )
            services.task_store.put_link(stored)
            services.audit.record(
                "link.write",
                plugin,
                task_id=stored.task_id,
                system=stored.system,
                external_key=stored.external_key,
            )

        def delete_link(call: CallContext, system: str, external_key: str) -> None:
            services.task_store.delete_link(plugin, system, external_key)
            services.audit.record("link.delete", plugin, system=system, external_key=external_key)

        return [
            HostFunction("get", get, READ),
            HostFunction("query", query, READ),
            HostFunction("put-many", put_many, WRITE),
            HostFunction("start-put-many", start_put_many, WRITE),
            HostFunction("finish-put-many", finish_put_many, WRITE),
            HostFunction("delete", delete, WRITE),
            HostFunction("changes-since", changes_since, READ),
            HostFunction("get-link", get_link, READ),
            HostFunction("links-for-task", links_for_task, READ),
            HostFunction("put-link", put_link, WRITE),
            HostFunction("delete-link", delete_link, WRITE),
        ]

    def close(self, state: _TasksState) -> None:
        state.workers.close()
