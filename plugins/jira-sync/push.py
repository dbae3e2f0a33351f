"""Push: local changes from the task change feed go to Jira.

The feed is read a small page at a time; changes written by this plugin are skipped (they are
pulls, not local edits). A linked task is merged with its issue as Jira has it now. A new task
creates an issue when `create_remote` is on, idempotently: an intent record in kv is written
before the POST and the issue carries the label `corral-<task id>`, so a retry after a lost
response finds the issue instead of creating a second one. Search lags, so an intent whose
issue cannot be found yet is kept (and retried by every sync) until the lag window has passed.
"""

import engine
import fields
import state
from corral_sdk import kv
from corral_sdk import tasks as sdk_tasks
from jira import JiraError
from state import Busy, Lease

FEED_PAGE = 1000
"""Changes read per page: after a pull the feed is mostly the plugin's own writes, skipped
cheaply, so a big page saves calls and run saves; the host's largest page."""


def page(ctx):
    """Push one page of the change feed; returns False when the feed is exhausted."""
    run = ctx.run
    changes, cursor = sdk_tasks.changes(run.get("feed"), FEED_PAGE)
    if not changes or cursor == run.get("feed"):
        return False
    latest = {}
    for change in changes:
        if change["actor"] != ctx.me:
            latest[change["task_id"]] = change
    done = set(run.get("feed_done", []))
    for task_id, change in latest.items():
        if task_id in done:
            continue
        if ctx.jira.budget.spent(0.6):
            run["feed_done"] = sorted(done)
            return True  # the same page again next slice, without what is done
        try:
            push_change(ctx, change)
        except JiraError as exc:
            ctx.error("push", exc.message, task_id=task_id)
        done.add(task_id)
    run["feed"] = cursor
    run["feed_done"] = []
    return True


def push_change(ctx, change):
    task_id = change["task_id"]
    if change["op"] == "delete":
        deleted_locally(ctx, task_id)
        return
    task = engine.get_task(task_id)
    if task is None:
        return  # deleted since: its delete is further down the feed
    link = engine.link_of_task(task_id)
    if link is not None:
        push_linked(ctx, task, *link)
    elif ctx.settings["create_remote"] and ctx.settings["direction"] != "pull":
        create(ctx, task)
    else:
        ctx.count("push", "unchanged")


def push_linked(ctx, task, issue_id, snapshot):
    if snapshot.get("gone"):
        ctx.count("push", "unchanged")
        return
    try:
        with Lease(issue_id):
            ctx.count("push", merge_with_remote(ctx, task, issue_id, snapshot, "push"))
    except Busy:
        ctx.error(
            "push",
            "the issue is being synced by another call; pushed next time",
            key=snapshot.get("key"),
            task_id=task["id"],
        )


def merge_with_remote(ctx, task, issue_id, snapshot, direction):
    """Fetch the issue and merge the pair (the caller holds the issue's lease); returns what
    happened: "updated", "unchanged" or "deleted"."""
    try:
        issue = ctx.jira.issue(issue_id, ctx.fields.jira_ids())
    except JiraError as exc:
        if exc.status == 404:
            gone(ctx, task, issue_id, snapshot, direction)
            return "deleted"
        raise
    remote = ctx.fields.remote_values(issue)
    outcome, write, new_snapshot, found = engine.reconcile(ctx, task, snapshot, issue, remote)
    ctx.count(direction, "conflicts", len(found))
    what = "updated" if outcome.changed else "unchanged"
    if ctx.dry_run:
        return what
    if write is not None:
        engine.put_tasks([write])
    engine.put_link(task["id"], issue_id, new_snapshot)
    state.record_conflicts(found)
    return what


def gone(ctx, task, issue_id, snapshot, direction):
    key = snapshot.get("key", issue_id)
    engine.mark_gone(
        ctx, direction, task, key, f"{key} was deleted in Jira or is no longer visible"
    )
    if not ctx.dry_run:
        engine.put_link(task["id"], issue_id, {**snapshot, "gone": True})


# --- local deletions ------------------------------------------------------------------------------


def deleted_locally(ctx, task_id):
    issue_id = engine.issue_of_task(task_id)
    if issue_id is None:
        return  # never synced
    ctx.count("push", "deleted")
    if ctx.dry_run:
        return
    tombstones = kv.get("tombstones", [])
    if issue_id not in tombstones:
        kv.set("tombstones", [*tombstones, issue_id])
    if not ctx.settings["delete_remote"]:
        ctx.error(
            "push",
            f"task deleted locally; issue {issue_id} kept (delete_remote is off)",
            key=issue_id,
            task_id=task_id,
        )
        return
    try:
        ctx.jira.delete(issue_id)
    except JiraError as exc:
        if exc.status != 404:
            ctx.error("push", exc.message, key=issue_id, task_id=task_id)


# --- idempotent create ----------------------------------------------------------------------------


def marker(task_id):
    return f"{fields.MARKER_PREFIX}{task_id}"


def create_fields(ctx, task):
    body = {"project": {"key": ctx.settings["project_key"]}, "issuetype": {"name": "Task"}}
    for field in ctx.fields.fields:
        if not field.pushes or field.jira == "status":
            continue
        value = field.read_local(task)
        if value in (None, "", []):
            continue
        body[field.jira] = field.to_remote(value)
    body["labels"] = [*list(body.get("labels", [])), marker(task["id"])]
    body.setdefault("summary", task.get("title") or task["id"])
    return body


def create(ctx, task):
    task_id = task["id"]
    intent_key = f"intent/{task_id}"
    if kv.get(intent_key) is not None:
        settle_intent(ctx, task_id)
        return
    if ctx.dry_run:
        ctx.count("push", "created")
        return
    kv.set(intent_key, {"at": state.now_ms()})
    try:
        created = ctx.jira.create(create_fields(ctx, task))
    except JiraError as exc:
        if 400 <= exc.status < 500:  # refused, so certainly not created
            kv.delete(intent_key)
        raise
    link_created(ctx, task, str(created["id"]), created.get("key", ""))
    kv.delete(intent_key)


def link_created(ctx, task, issue_id, key):
    """Link a task to the issue made from it, then merge the two (a status other than the
    workflow's first goes through transitions that way)."""
    issue = ctx.jira.issue(issue_id, ctx.fields.jira_ids())
    remote = ctx.fields.remote_values(issue)
    snapshot = {"key": issue["key"], "base": remote, "hash": engine.content_hash(remote)}
    engine.put_link(task["id"], issue_id, snapshot)
    engine.remember_created(task["id"], issue_id)
    ctx.count("push", "created")
    merge_with_remote(ctx, engine.get_task(task["id"]) or task, issue_id, snapshot, "push")


def settle_intent(ctx, task_id):
    """Finish a create whose outcome is unknown: find its issue by marker, or create again once
    search has had time to show it."""
    intent_key = f"intent/{task_id}"
    intent = kv.get(intent_key)
    task = engine.get_task(task_id)
    if intent is None:
        return
    if task is None or engine.link_of_task(task_id) is not None:
        kv.delete(intent_key)
        return
    found, _ = ctx.jira.search(f'labels = "{marker(task_id)}"', ctx.fields.jira_ids(), 2)
    if found:
        link_created(ctx, task, str(found[0]["id"]), found[0]["key"])
        kv.delete(intent_key)
        return
    lag_ms = ctx.settings["search_lag_seconds"] * 1000
    if state.now_ms() - intent["at"] < lag_ms:
        ctx.error(
            "push",
            "create not confirmed yet (Jira search lags); checked again next sync",
            task_id=task_id,
        )
        return
    kv.delete(intent_key)
    create(ctx, task)


def settle_intents(ctx):
    """Every unconfirmed create, at the start of a push phase."""
    for key in kv.keys("intent/"):
        if ctx.jira.budget.spent(0.6):
            return False
        settle_intent(ctx, key[len("intent/") :])
    return True
