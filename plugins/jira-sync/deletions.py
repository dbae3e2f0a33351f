"""After a full pull: linked tasks whose issue the search no longer returns. Each is checked
with a direct GET (search lags; a GET does not) before its task is flagged as gone."""

import engine
from corral_sdk import kv
from corral_sdk import tasks as sdk_tasks
from jira import JiraError

PAGE = 1000
"""Linked tasks per query page (the host's largest): nearly all are answered by the seen ids
alone, so a big page saves calls and run saves."""
SEEN_PAGES = 10
"""Search pages whose issue ids wait in the run record before they go to kv as one value:
each kv write is a commit, as costly as a page's task writes."""


def remember_seen(run, ids, last):
    """Record the ids of the search page `run["pages"]` (`last`: the search's last page).

    The run record, saved after every page, holds them until `SEEN_PAGES` pages are pending;
    a page done again after a crash writes the same ids under the same key."""
    pending = run.setdefault("seen_pending", [])
    pending.extend(ids)
    page = run.get("pages", 0)
    if last or page % SEEN_PAGES == SEEN_PAGES - 1:
        kv.set(f"seen/{run['run_id']}/b{page // SEEN_PAGES}", pending)
        run["seen_pending"] = []


def seen_ids(run):
    seen = set()
    for key in kv.keys(f"seen/{run['run_id']}/"):
        seen.update(kv.get(key, []))
    return seen


def forget_seen(run):
    for key in kv.keys(f"seen/{run['run_id']}/"):
        kv.delete(key)


def page(ctx, seen):
    """Check one page of linked tasks; returns False when all are checked.

    A page out of time is read again by the next slice, which skips the tasks already checked
    (`gone_done`): nothing is counted or reported twice."""
    run = ctx.run
    # Ids alone: nearly every task is answered by them, and the few left are read whole.
    wanted = {"linked": engine.SYSTEM, "fields": ["id"]}
    items, cursor = sdk_tasks.query(wanted, run.get("gone_cursor"), PAGE)
    checked = run.setdefault("gone_done", [])
    done = set(checked)
    for item in items:
        task_id = item["id"]
        if engine.issue_of_task(task_id) in seen or task_id in done:
            continue  # the common case, answered without reading the link
        if ctx.jira.budget.spent(0.6):
            return True
        _check(ctx, task_id, seen)
        checked.append(task_id)
    run["gone_cursor"] = cursor
    run["gone_done"] = []
    return cursor is not None


def _check(ctx, task_id, seen):
    link = engine.link_of_task(task_id)
    if link is None or link[0] in seen or link[1].get("gone"):
        return
    task = engine.get_task(task_id)
    if task is None:
        return  # deleted since the page was read; its link went with it
    issue_id, snapshot = link
    key = snapshot.get("key", issue_id)
    try:
        ctx.jira.issue(issue_id, ["updated"])
        reason = f"{key} no longer matches the sync's project and JQL"
    except JiraError as exc:
        if exc.status != 404:
            ctx.error("pull", f"could not check {key}: {exc.message}", key=key)
            return
        reason = f"{key} was deleted in Jira"
    ctx.count("pull", "deleted")
    engine.mark_gone(ctx, "pull", task, key, reason)
    if not ctx.dry_run:
        engine.put_link(task_id, issue_id, {**snapshot, "gone": True})
