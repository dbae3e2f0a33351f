"""What pull, push and webhooks share: the sync context and applying a merge to both sides.

A pair is a task, its Jira issue and the link between them, whose snapshot holds the base of
the three-way merge (`base`, in local form), the issue key and a hash of the issue's mapped
values as the sync last saw or wrote them (`hash`): an issue whose hash is unchanged costs
nothing, and the sync's own writes read back as unchanged (echo suppression).
"""

import contextlib
import hashlib
import json

import merge
import state
import transitions
from componentize_py_types import Err
from corral_sdk import errors, kv
from corral_sdk import tasks as sdk_tasks
from jira import JiraError
from wit_world.imports import tasks

SYSTEM = "jira"
ERRORS_KEPT = 50


# One encoder for every hash: `json.dumps` with options builds a new one per call, which costs
# as much as encoding a small issue.
_HASH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def content_hash(values):
    return hashlib.sha1(_HASH_JSON.encode(values).encode()).hexdigest()


def task_id_for(issue_id):
    """The id of the task a pulled issue creates: derived from the issue, so a retry after a
    crash writes the same task again instead of a second one."""
    return f"jira-{issue_id}"


class Context:
    """One slice's view: settings, the field map, the Jira client, counts and errors."""

    def __init__(self, settings, fieldmap, jira, run, plugin_name):
        self.settings = settings
        self.fields = fieldmap
        self.jira = jira
        self.run = run
        self.dry_run = run.get("dry_run", False)
        self.me = plugin_name
        self.held = None
        self.longest_step = 0.0
        """The longest page of work so far in this slice, in seconds."""
        self.next_page = None
        """(token, answer) of the search page fetched ahead, if one is."""
        self.unsettled = None
        """The pulled page whose tasks are being written (`pull.settle` records it)."""
        self.deferred = None
        """While a list: `count` and `error` calls wait there, for the page being merged to
        be written before the run records them."""

    def count(self, direction, what, n=1):
        if self.deferred is not None:
            self.deferred.append((self.count, (direction, what, n)))
            return
        counts = self.run["counts"][direction]
        counts[what] = counts.get(what, 0) + n

    def error(self, direction, reason, key=None, task_id=None):
        if self.deferred is not None:
            self.deferred.append((self.error, (direction, reason, key, task_id)))
            return
        self.count(direction, "errors")
        entry = {"key": key, "task_id": task_id, "direction": direction, "reason": reason}
        self.run.setdefault("slice_errors", []).append(entry)
        kept = self.run.setdefault("errors", [])
        if len(kept) < ERRORS_KEPT:
            kept.append(entry)

    def held_fields(self, task_id):
        if self.held is None:
            table = state.conflicts()
            self.held = {}
            for record in table.values():
                self.held.setdefault(record["task_id"], set()).add(record["field"])
        return self.held.setdefault(task_id, set())


# --- links --------------------------------------------------------------------------------------


def get_link(issue_id):
    """(task_id, snapshot) or None."""
    link = sdk_tasks.get_link(SYSTEM, issue_id)
    return None if link is None else (link["task_id"], link["snapshot"])


def linked_tasks(issue_ids):
    """{issue id: (task, snapshot)} for those of `issue_ids` linked to a task: a page's
    links and tasks in one host call, where a `get_link` and a `get` per issue were two each."""
    if not issue_ids:
        return {}
    wanted = {"links": {"system": SYSTEM, "external_keys": [str(i) for i in issue_ids]}}
    # Each key links at most one task, so one page of len(issue_ids) holds them all.
    items, _ = sdk_tasks.query(wanted, None, len(issue_ids))
    found = {}
    for task in items:
        for link in task.pop("links"):
            found[link["external_key"]] = (task, json.loads(link["snapshot"]))
    return found


def link_of_task(task_id):
    """(issue_id, snapshot) of a task's Jira link, or None."""
    for link in sdk_tasks.links_for_task(task_id):
        if link["system"] == SYSTEM:
            return link["external_key"], link["snapshot"]
    return None


def link_item(issue_id, snapshot):
    """The `link` of a put-many item."""
    return {"system": SYSTEM, "external_key": str(issue_id), "snapshot": snapshot}


def put_link(task_id, issue_id, snapshot):
    sdk_tasks.put_link(task_id, SYSTEM, issue_id, snapshot)


def get_task(task_id):
    try:
        return sdk_tasks.get(task_id)
    except Err as exc:
        if errors.is_not_found(exc):
            return None
        raise


def put_tasks(items):
    # The stored tasks the host answers with are not needed: not parsing them saves the guest
    # a JSON document as large as the batch.
    tasks.put_many(json.dumps(items, separators=(",", ":")))


def start_put_tasks(items):
    """`put_tasks`, written by the host while the sync works on; returns the function that
    waits for it (and raises what `put_tasks` would have)."""
    batch = tasks.start_put_many(json.dumps(items, separators=(",", ":")))
    return lambda: tasks.finish_put_many(batch)


# --- applying a merge ---------------------------------------------------------------------------


def push_fields(ctx, issue, values):
    """Write local values to the issue; returns the fields that could not be written."""
    raw = issue.get("fields") or {}
    key = issue["key"]
    body, failed = {}, set()
    status = None
    for name, value in values.items():
        field = ctx.fields.by_local[name]
        if field.jira == "status":
            status = (name, field, value)
        else:
            body[field.jira] = field.to_remote(value, raw.get(field.jira))
    if body:
        try:
            ctx.jira.update(key, body)
        except JiraError as exc:
            ctx.error("push", exc.message, key=key)
            failed.update(n for n in values if n != (status or (None,))[0])
    if status is not None:
        name, field, value = status
        try:
            transitions.move(ctx.jira, key, raw.get("status"), field, value)
        except transitions.Unreachable as exc:
            ctx.error("push", str(exc), key=key)
            failed.add(name)
        except JiraError as exc:
            ctx.error("push", exc.message, key=key)
            failed.add(name)
    return failed


def conflict_records(ctx, task_id, issue, outcome):
    when = state.iso_now()
    return [
        {
            "task_id": task_id,
            "external_key": issue["key"],
            "issue_id": str(issue["id"]),
            "field": name,
            "base": base,
            "local": local,
            "remote": remote,
            "detected_at": when,
        }
        for name, base, local, remote in outcome.conflicts
    ]


def reconcile(ctx, task, snapshot, issue, remote):
    """Merge one pair, push what goes to Jira now, and return (task_write, new_snapshot,
    conflicts); the caller writes the task and the link (batched in a pull)."""
    local = ctx.fields.local_values(task)
    outcome = merge.reconcile(
        ctx.fields,
        local,
        remote,
        snapshot.get("base", {}),
        local_at=task.get("updated_at", ""),
        remote_at=(issue.get("fields") or {}).get("updated", ""),
        held=ctx.held_fields(task["id"]),
    )
    base = outcome.base
    pushed_remote = dict(remote)
    if outcome.to_remote and not ctx.dry_run:
        failed = push_fields(ctx, issue, outcome.to_remote)
        for name in failed:  # not written: the base stays, so the next sync tries again
            if name in snapshot.get("base", {}):
                base[name] = snapshot["base"][name]
            else:
                base.pop(name, None)
        for name, value in outcome.to_remote.items():
            if name not in failed:
                pushed_remote[name] = value
    write = None
    if outcome.to_local:
        write = {"id": task["id"], "expected_version": task["version"]}
        for name, value in outcome.to_local.items():
            ctx.fields.by_local[name].write_local(write, value)
        if "custom_fields" in write:  # a partial custom_fields would drop the others
            write["custom_fields"] = {**(task.get("custom_fields") or {}), **write["custom_fields"]}
    # Held from now on in this slice too, so the other direction does not count it again.
    ctx.held_fields(task["id"]).update(name for name, *_ in outcome.conflicts)
    new_snapshot = {"key": issue["key"], "base": base, "hash": content_hash(pushed_remote)}
    return outcome, write, new_snapshot, conflict_records(ctx, task["id"], issue, outcome)


def issue_of_task(task_id):
    """The issue id a task was pulled from or created as (also after the task and its link
    are deleted), or None."""
    if task_id.startswith("jira-"):
        return task_id[len("jira-") :]
    return kv.get(f"created/{task_id}")


def remember_created(task_id, issue_id):
    """Which issue a task created: its link goes when the task is deleted, this stays."""
    kv.set(f"created/{task_id}", str(issue_id))


def new_task_from(ctx, issue, remote, digest, task_id):
    """The task a newly seen issue creates, and its link snapshot (`digest`: the
    `content_hash` of `remote`)."""
    task = {"id": task_id}
    for field in ctx.fields.fields:
        if field.pulls and remote[field.local] is not None:
            field.write_local(task, remote[field.local])
    task.setdefault("title", issue["key"])
    base = {f.local: remote[f.local] for f in ctx.fields.fields if f.pulls}
    return task, {"key": issue["key"], "base": base, "hash": digest}


def mark_gone(ctx, direction, task, issue_key, reason):
    """An issue deleted in Jira (or no longer visible): flag its task, never delete it."""
    ctx.error(direction, reason, key=issue_key, task_id=task["id"] if task else None)
    if task is None or ctx.dry_run:
        return
    custom = dict(task.get("custom_fields") or {})
    if custom.get("jira_gone") == issue_key:
        return
    custom["jira_gone"] = issue_key
    # A task changed meanwhile keeps its flag off until the next sync marks it again.
    with contextlib.suppress(Err):
        put_tasks(
            [{"id": task["id"], "custom_fields": custom, "expected_version": task["version"]}]
        )
