"""Pull: page through `/search/jql` and merge each issue into its task, a page at a time.

Full runs order by key, which updates do not reorder, so paging while issues change skips
nothing; incremental runs ask for `updated >= <epoch ms>` (no time-zone or minute-precision
ambiguity) starting `search_lag_seconds` before the newest change the last run saw, because
search is eventually consistent. Re-reading the overlap is cheap: an issue whose mapped values
hash as they did costs no write, and a page's links and tasks are read in one host call.
"""

import deletions
import engine
import fields
import state
from componentize_py_types import Err
from corral_sdk import errors


def jql(settings, since_ms=None):
    clauses = [f'project = "{settings["project_key"]}"']
    if settings.get("jql"):
        clauses.append(f"({settings['jql']})")
    if since_ms is not None:
        clauses.append(f"updated >= {int(since_ms)}")
    return " AND ".join(clauses) + " ORDER BY key ASC"


def marker_task(issue):
    """The local task a sync-created issue belongs to (its `corral-<task id>` label), if any."""
    for label in (issue.get("fields") or {}).get("labels") or ():
        if label.startswith(fields.MARKER_PREFIX):
            return label[len(fields.MARKER_PREFIX) :]
    return None


def page(ctx):
    """Pull one page; returns False when the search is exhausted.

    The next page is fetched while this one is merged and written (when the slice has time
    for it): the host sends it in the background, so Jira's time and ours overlap."""
    run = ctx.run
    query = (
        jql(ctx.settings, run.get("since_ms")),
        ctx.fields.jira_ids(),
        ctx.settings["page_size"],
    )
    ahead, ctx.next_page = ctx.next_page, None
    if ahead is not None and ahead[0] == run.get("token"):
        found, token = ahead[1]()
    else:
        found, token = ctx.jira.search(*query, run.get("token"))
    if token is not None and ctx.jira.budget.room_for(2 * ctx.longest_step):
        ctx.next_page = (token, ctx.jira.start_search(*query, token))
    apply_issues(ctx, found)
    if run["mode"] == "full":  # plugin state, kept in dry runs too: the deletion check needs it
        deletions.remember_seen(run, [str(i["id"]) for i in found], last=token is None)
    run["pages"] = run.get("pages", 0) + 1
    run["token"] = token
    run["seen"] = run.get("seen", 0) + len(found)
    return token is not None


def newest_update(ctx, issue):
    updated = (issue.get("fields") or {}).get("updated")
    if updated:
        ms = int(engine.merge.parse_time(updated) * 1000)
        ctx.run["newest_ms"] = max(ctx.run.get("newest_ms") or 0, ms)


def apply_issues(ctx, issues, direction="pull", respect_leases=True):
    """Merge issues into tasks: one batched task write, then one link write per changed pair.

    `respect_leases` False: the caller holds the lease of the (one) issue itself."""
    changed = []
    linked = engine.linked_tasks([issue["id"] for issue in issues])
    for issue in issues:
        newest_update(ctx, issue)
        remote = ctx.fields.remote_values(issue)
        digest = engine.content_hash(remote)
        link = linked.get(str(issue["id"]))  # (task, snapshot)
        if link is not None and link[1].get("hash") == digest and not link[1].get("gone"):
            ctx.count(direction, "unchanged")
            continue
        changed.append((issue, remote, digest, link))
    if not changed:
        return
    tombstones = set(state.get("tombstones", []))
    writes, links, conflicts = [], [], []
    for issue, remote, digest, link in changed:
        if respect_leases and link is not None and state.leased(issue["id"]):
            # A webhook or another sync is merging this issue right now and will finish it;
            # the task write's expected_version guards the rest of the window.
            ctx.count(direction, "unchanged")
            continue
        _merge_one(
            ctx, issue, remote, digest, link, tombstones, writes, links, conflicts, direction
        )
    if ctx.dry_run:
        for *_, what in links:
            ctx.count(direction, what)
        return
    _write(ctx, writes, links, direction)
    state.record_conflicts(conflicts)


def _merge_one(ctx, issue, remote, digest, link, tombstones, writes, links, conflicts, direction):
    issue_id = str(issue["id"])
    if link is None:
        if issue_id in tombstones:
            ctx.count(direction, "unchanged")
            return
        owner = marker_task(issue)
        task = engine.get_task(owner) if owner else None
        if task is None:  # a new issue: a new task
            task_id = engine.task_id_for(issue_id)
            new, snapshot = engine.new_task_from(ctx, issue, remote, digest, task_id)
            writes.append(new)
            links.append((task_id, issue_id, snapshot, "created"))
            return
        # Our own create whose answer was lost: the issue was made from this task, so what it
        # holds is the base, and whatever differs is a local change still to push.
        snapshot = {"base": dict(remote)}
        engine.remember_created(owner, issue_id)
    else:
        task, snapshot = link
    outcome, write, new_snapshot, found = engine.reconcile(ctx, task, snapshot, issue, remote)
    conflicts.extend(found)
    ctx.count(direction, "conflicts", len(found))
    if write is not None:
        writes.append(write)
    what = "updated" if outcome.changed else "unchanged"
    links.append((task["id"], issue_id, new_snapshot, what))


def _batch(writes, links):
    """One put-many batch: each task write carries its link; a pair whose task is unchanged
    writes its link alone (task and link land in the same transaction either way)."""
    by_task = {item["id"]: dict(item) for item in writes}
    for task_id, issue_id, snapshot, _ in links:
        item = by_task.setdefault(task_id, {"id": task_id})
        item["link"] = engine.link_item(issue_id, snapshot)
    return list(by_task.values())


def _write(ctx, writes, links, direction):
    try:
        engine.put_tasks(_batch(writes, links))
    except Err as exc:
        if errors.kind_of(exc) != "conflict":
            raise
        # A task changed while we merged: write the others; the changed one is merged again
        # by the next sync (its link keeps the old snapshot, so nothing is lost).
        for item in _batch(writes, links):
            try:
                engine.put_tasks([item])
            except Err as one:
                if errors.kind_of(one) != "conflict":
                    raise
                links = [entry for entry in links if entry[0] != item["id"]]
                ctx.error(
                    direction, "task changed during the sync; merged next time", task_id=item["id"]
                )
    for *_, what in links:
        ctx.count(direction, what)
