"""Typed helpers over the `tasks` import: tasks cross the boundary as JSON text."""

import json

from componentize_py_types import Err
from wit_world.imports import tasks as _tasks

from . import errors


def get(task_id):
    """The task as a dict (raises Err(not-found))."""
    return json.loads(_tasks.get(task_id))


def query(filter=None, cursor=None, limit=100):
    """One page: (tasks, next_cursor)."""
    page = _tasks.query(json.dumps(filter or {}), cursor, limit)
    return json.loads(page.items), page.next_cursor


def iter_query(limit=500, **filter):
    """Every task matching the filter (status, assignee, label, updated_since, linked, unlinked;
    fields: only those keys of each task)."""
    cursor = None
    while True:
        items, cursor = query(filter, cursor, limit)
        yield from items
        if cursor is None:
            return


def put_many(items):
    """Upsert a list of task dicts atomically; returns the stored tasks."""
    return json.loads(_tasks.put_many(json.dumps(list(items))))


class StartedBatch:
    """A batch `start_put_many` is writing; `result()` waits for the stored tasks."""

    def __init__(self, batch):
        self._batch = batch

    def result(self):
        """The stored tasks (once), or the error `put_many` would have raised."""
        return json.loads(_tasks.finish_put_many(self._batch))


def start_put_many(items):
    """`put_many`, written on a host thread while the plugin works on: returns a
    `StartedBatch` at once (at most two unfinished per call, written in the order started)."""
    return StartedBatch(_tasks.start_put_many(json.dumps(list(items))))


def changes(cursor=None, limit=500):
    """One page of the change feed: (changes, next_cursor or the cursor you passed). Your
    plugin's own changes carry no task ("task" is None)."""
    page = _tasks.changes_since(cursor, limit)
    return json.loads(page.items), page.next_cursor or cursor


def _link(link):
    return {
        "task_id": link.task_id,
        "system": link.system,
        "external_key": link.external_key,
        "snapshot": json.loads(link.snapshot),
    }


def get_link(system, external_key):
    """Your plugin's link to `external_key` in `system` ({"task_id", "system", "external_key",
    "snapshot"}, the snapshot decoded), or None."""
    try:
        return _link(_tasks.get_link(system, str(external_key)))
    except Err as error:
        if errors.is_not_found(error):
            return None
        raise


def links_for_task(task_id):
    """Your plugin's links of a task, as `get_link` returns them."""
    return [_link(link) for link in _tasks.links_for_task(task_id)]


def put_link(task_id, system, external_key, snapshot):
    """Link a task to `external_key` in `system` (replacing that key's link), with a JSON-able
    `snapshot`: the state both sides last agreed on."""
    _tasks.put_link(
        _tasks.Link(
            task_id=task_id,
            system=system,
            external_key=str(external_key),
            snapshot=json.dumps(snapshot, separators=(",", ":")),
        )
    )


def delete_link(system, external_key):
    _tasks.delete_link(system, str(external_key))
