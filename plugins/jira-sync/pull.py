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
from corral_sdk import errors, kv


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
    """Pull one page; returns False when the search is exhausted and all of it is written.

    Three things overlap: the next page is fetched while this one is merged, and this page's
    tasks are written while the next is fetched and parsed (the host does both on its own
    threads while the plugin works). The run counts a page only once its tasks are written
    (`settle`), so a slice that ends, or a process that dies, does at most that page again."""
    run = ctx.run
    query = (
        jql(ctx.settings, run.get("since_ms")),
        ctx.fields.jira_ids(),
        ctx.settings["page_size"],
    )
    wanted = ctx.unsettled.token if ctx.unsettled is not None else run.get("token")
    ahead, ctx.next_page = ctx.next_page, None
    if ahead is not None and ahead[0] == wanted:
        found, token = ahead[1]()
    else:
        found, token = ctx.jira.search(*query, wanted)
    if token is not None and ctx.jira.budget.room_for(2 * ctx.longest_step):
        ctx.next_page = (token, ctx.jira.start_search(*query, token))
    settle(ctx)
    ctx.unsettled = _merge_page(ctx, found, token)
    if token is None:
        settle(ctx)
    return token is not None


class _Unsettled:
    """A merged page whose tasks the host is writing: what the run records once they are."""

    def __init__(self, issues, token, started, writes, links, conflicts, deferred):
        self.ids = [str(issue["id"]) for issue in issues]
        self.token = token
        self.started = started
        self.writes = writes
        self.links = links
        self.conflicts = conflicts
        self.deferred = deferred


def _merge_page(ctx, issues, token):
    ctx.deferred = []
    try:
        writes, links, conflicts = _merged(ctx, issues, "pull", respect_leases=True)
    finally:
        deferred, ctx.deferred = ctx.deferred, None
    started = None
    if links and not ctx.dry_run:
        started = engine.start_put_tasks(_batch(writes, links))
    return _Unsettled(issues, token, started, writes, links, conflicts, deferred)


def settle(ctx):
    """Wait for the page in flight to be written, then record it in the run and save the run
    (before the next write starts: a host call made while the host writes waits for it)."""
    page, ctx.unsettled = ctx.unsettled, None
    if page is None:
        return
    for count, args in page.deferred:
        count(*args)
    _record(ctx, page.writes, page.links, page.conflicts, "pull", page.started)
    run = ctx.run
    if run["mode"] == "full":  # plugin state, kept in dry runs too: the deletion check needs it
        deletions.remember_seen(run, page.ids, last=page.token is None)
    run["pages"] = run.get("pages", 0) + 1
    run["token"] = page.token
    run["seen"] = run.get("seen", 0) + len(page.ids)
    kv.set("run", run)


def newest_update(ctx, issue):
    updated = (issue.get("fields") or {}).get("updated")
    if updated:
        ms = int(engine.merge.parse_time(updated) * 1000)
        ctx.run["newest_ms"] = max(ctx.run.get("newest_ms") or 0, ms)


def apply_issues(ctx, issues, direction="pull", respect_leases=True):
    """Merge issues into tasks and write them: one batch of tasks with their links.

    `respect_leases` False: the caller holds the lease of the (one) issue itself."""
    writes, links, conflicts = _merged(ctx, issues, direction, respect_leases)
    _record(ctx, writes, links, conflicts, direction)


def _merged(ctx, issues, direction, respect_leases):
    """(task writes, links, conflicts) of merging `issues` into their tasks."""
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
        return [], [], []
    tombstones = set(kv.get("tombstones", []))
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
    return writes, links, conflicts


def _record(ctx, writes, links, conflicts, direction, started=None):
    """Write (or finish writing, `started`) a merge's tasks and links, and count them."""
    if ctx.dry_run:
        for *_, what in links:
            ctx.count(direction, what)
        return
    if links:
        _write(ctx, writes, links, direction, started)
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


def _write(ctx, writes, links, direction, started=None):
    try:
        if started is not None:
            started()
        else:
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
