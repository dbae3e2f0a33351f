"""jira-sync: bidirectional sync of Jira issues and Corral tasks (the sync protocol's commands
`sync`, `status`, `conflicts` and `resolve`, plus Jira webhooks through `on-event`).

A `sync` call does a bounded slice: it stops starting new pages once 60% of its budget is
used, saves the run in kv after every page, and returns its progress; the driver calls again
until `done`. A run survives a killed process: the next call resumes it from kv.
"""

import contextlib
import gc
import time
import uuid

import deletions
import engine
import fields
import pull
import push
import settings as settings_module
import state
from corral_sdk import Plugin, errors, kv
from jira import Budget, Jira, JiraError, OutOfTime
from state import Busy, Lease
from wit_world.imports import log

NAME = "jira-sync"
"""The plugin's name: the actor of its own writes in the change feed."""
DEFAULT_BUDGET_MS = 5000
WEBHOOK_BUDGET_MS = 10000
MODES = ("full", "incremental")

plugin = Plugin()


def _custom_ids(settings, jira):
    """Ids of custom fields the mapping names, from `GET /field` once (then kept in kv)."""
    names = fields.custom_field_names(settings)
    cached = kv.get("custom_ids", {})
    if all(name in cached for name in names):
        return cached
    table = {}
    for field in jira.fields():
        table.setdefault(field["name"], field["id"])
    for local, entry in settings["field_mapping"].items():
        jira_name = entry if isinstance(entry, str) else (entry or {}).get("jira")
        if jira_name in names and jira_name not in table:
            raise errors.invalid_input(
                f"config.field_mapping.{local}: Jira has no field named {jira_name!r}"
            )
    found = {name: table[name] for name in names}
    kv.set("custom_ids", found)
    return found


def _context(run, budget_ms):
    settings = settings_module.load()
    jira = Jira(settings["base_url"], settings["api_version"], Budget(budget_ms))
    fieldmap = fields.build(settings, _custom_ids(settings, jira))
    return engine.Context(settings, fieldmap, jira, run, NAME)


def _empty_counts():
    keys = ("created", "updated", "unchanged", "conflicts", "errors", "deleted")
    return {side: dict.fromkeys(keys, 0) for side in ("pull", "push")}


def _new_run(mode, dry_run, search_lag_seconds):
    cursor = kv.get("cursor", {})
    since = None
    if mode == "incremental" and cursor.get("newest_ms"):
        since = cursor["newest_ms"] - search_lag_seconds * 1000
    return {
        "run_id": "r-" + uuid.uuid4().hex[:12],
        "mode": mode,
        "dry_run": dry_run,
        "phase": "pull",
        "started_at": state.iso_now(),
        "started_ms": state.now_ms(),
        "since_ms": since,
        "newest_ms": cursor.get("newest_ms"),
        "feed": cursor.get("feed"),
        "counts": _empty_counts(),
        "errors": [],
    }


def _report(run):
    finished = state.now_ms()
    return {
        "run_id": run["run_id"],
        "mode": run["mode"],
        "dry_run": run["dry_run"],
        "started_at": run["started_at"],
        "finished_at": state.iso_now(),
        "duration_ms": finished - run["started_ms"],
        "counts": run["counts"],
        "errors": run["errors"],
        "conflicts": run["counts"]["pull"]["conflicts"] + run["counts"]["push"]["conflicts"],
    }


def _finish(run):
    report = _report(run)
    if run["mode"] == "full":
        deletions.forget_seen(run)
    if not run["dry_run"]:
        kv.set("cursor", {"newest_ms": run.get("newest_ms"), "feed": run.get("feed")})
    state.append_report(report)
    kv.delete("run")
    run["phase"] = "finished"
    return report


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a page is parsed and merged: it would walk
    the page's thousands of young objects again and again (a third of the parse's time), and
    they hold no cycles: reference counting frees them."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _step(ctx):
    """Work page by page while another page fits the budget; returns the final report when done."""
    run, budget = ctx.run, ctx.jira.budget
    seen = None
    while budget.room_for(ctx.longest_step):
        started = time.monotonic()
        phase = run["phase"]
        if phase == "pull":
            with _collector_paused():
                more = pull.page(ctx)
            ctx.longest_step = max(ctx.longest_step, time.monotonic() - started)
            if more:
                continue  # the run was saved when the page before was written
            run["phase"] = "gone" if run["mode"] == "full" else "push"
        elif phase == "gone":
            seen = deletions.seen_ids(run) if seen is None else seen
            if not deletions.page(ctx, seen):
                run["phase"] = "push"
        elif phase == "push":
            if not run.get("intents_settled"):
                run["intents_settled"] = push.settle_intents(ctx)
            elif not push.page(ctx):
                return _finish(run)
        kv.set("run", run)
        ctx.longest_step = max(ctx.longest_step, time.monotonic() - started)
    pull.settle(ctx)  # the page in flight, if any; every other step saved the run already
    return None


def _save(ctx):
    """Save the run once the page in flight is written: the next slice goes on from there."""
    if ctx.unsettled is not None:
        pull.settle(ctx)
    else:
        kv.set("run", ctx.run)


def _phase(run):
    """The protocol's phase: the deletion check is part of pulling."""
    return "pull" if run["phase"] == "gone" else run["phase"]


@plugin.command("sync")
def sync(args):
    args = args or {}
    mode = args.get("mode", "incremental")
    if mode not in MODES:
        raise errors.invalid_input(f"sync.mode: one of {', '.join(MODES)}, got {mode!r}")
    dry_run = bool(args.get("dry_run", False))
    budget_ms = args.get("budget_ms", DEFAULT_BUDGET_MS)
    if not isinstance(budget_ms, int) or budget_ms < 100:
        raise errors.invalid_input("sync.budget_ms: a whole number of milliseconds, 100 or more")
    settings = settings_module.load()
    run = kv.get("run")
    if run is not None and args.get("restart"):  # else resumed, whatever mode this call names
        if run["mode"] == "full":
            deletions.forget_seen(run)
        run = None
    if run is None:
        run = _new_run(mode, dry_run, settings["search_lag_seconds"])
    run["slice_errors"] = []
    ctx = _context(run, budget_ms)
    report = None
    try:
        report = _step(ctx)
    except OutOfTime:
        _save(ctx)  # pages already written are kept; the next call goes on
    except JiraError as exc:
        _save(ctx)
        raise errors.unavailable(f"Jira: {exc.message}") from None
    slice_errors = run.pop("slice_errors")
    return {
        "run_id": run["run_id"],
        "mode": run["mode"],  # a resumed run's, whatever this call named
        "dry_run": run["dry_run"],
        "done": report is not None,
        "phase": _phase(run),
        "counts": run["counts"],
        "remaining": None,
        "seen": run.get("seen", 0),
        "errors": slice_errors,
        "report": report,
    }


@plugin.command("status")
def status(args):
    run = kv.get("run")
    running = None
    if run is not None:
        running = {k: run.get(k) for k in ("run_id", "mode", "started_at", "counts")}
        running["phase"] = _phase(run)
    cursor = kv.get("cursor", {})
    return {
        "running": running,
        "last_runs": kv.get("log", []),
        "open_conflicts": len(state.conflicts()),
        "cursor": {"newest_ms": cursor.get("newest_ms"), "feed": bool(cursor.get("feed"))},
    }


@plugin.command("conflicts")
def conflicts(args):
    task_id = (args or {}).get("task_id")
    return {
        "conflicts": [
            {"id": cid, **record}
            for cid, record in sorted(state.conflicts().items(), key=lambda i: i[1]["detected_at"])
            if task_id is None or record["task_id"] == task_id
        ]
    }


@plugin.command("resolve")
def resolve(args):
    args = args or {}
    table = state.conflicts()
    record = table.get(args.get("id"))
    if record is None:
        raise errors.not_found(f"resolve.id: no open conflict {args.get('id')!r}")
    take = args.get("take")
    if take not in ("local", "remote", "value"):
        raise errors.invalid_input("resolve.take: one of local, remote, value")
    if take == "value" and "value" not in args:
        raise errors.invalid_input("resolve.value: required with take=value")
    run = {"counts": _empty_counts(), "errors": [], "mode": "resolve", "dry_run": False}
    ctx = _context(run, DEFAULT_BUDGET_MS)
    field = ctx.fields.by_local.get(record["field"])
    if field is None:
        raise errors.invalid_input(f"resolve: field {record['field']!r} is no longer mapped")
    value = args["value"] if take == "value" else record[take]
    task = engine.get_task(record["task_id"])
    if task is None:
        raise errors.not_found(f"resolve: task {record['task_id']!r} no longer exists")
    issue_id = record["issue_id"]
    with Lease(issue_id):
        issue = ctx.jira.issue(issue_id, ctx.fields.jira_ids())
        remote = ctx.fields.remote_values(issue)
        pushed = pulled = False
        if remote[field.local] != value:
            if engine.push_fields(ctx, issue, {field.local: value}):
                reason = run["errors"][-1]["reason"]
                raise errors.unavailable(f"resolve: could not write {field.jira}: {reason}")
            remote[field.local] = value
            pushed = True
        if field.read_local(task) != value:
            write = {"id": task["id"], "expected_version": task["version"]}
            field.write_local(write, value)
            if "custom_fields" in write:
                write["custom_fields"] = {**task.get("custom_fields", {}), **write["custom_fields"]}
            engine.put_tasks([write])
            pulled = True
        link = engine.link_of_task(task["id"])
        snapshot = link[1] if link else {"key": issue["key"], "base": {}}
        snapshot["base"][field.local] = value
        snapshot["hash"] = engine.content_hash(remote)
        engine.put_link(task["id"], issue_id, snapshot)
        del table[args["id"]]
        kv.set("conflicts", table)
    return {
        "resolved": args["id"],
        "field": field.local,
        "value": value,
        "pushed": pushed,
        "pulled": pulled,
    }


WEBHOOK_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")


@plugin.on("*")
def on_event(event, payload):
    """A webhook is a hint: the issue is fetched again and merged as a sync would."""
    kind = (payload or {}).get("webhookEvent") if isinstance(payload, dict) else None
    if event.type not in WEBHOOK_EVENTS and kind not in WEBHOOK_EVENTS:
        return
    issue_id = str(((payload or {}).get("issue") or {}).get("id") or "")
    if not issue_id.isdigit():
        return
    run = {"counts": _empty_counts(), "errors": [], "mode": "webhook", "dry_run": False}
    ctx = _context(run, WEBHOOK_BUDGET_MS)
    try:
        with Lease(issue_id):
            _webhook_issue(ctx, issue_id)
    except Busy:
        return  # a sync holds this issue and merges it as Jira has it now
    except (JiraError, OutOfTime) as exc:
        log.log(
            log.Level.WARN,
            "webhook not applied; the next sync catches up",
            [("issue", issue_id), ("reason", str(exc))],
        )
        return
    log.log(log.Level.INFO, "webhook applied", [("issue", issue_id), ("type", event.type)])


def _webhook_issue(ctx, issue_id):
    try:
        issue = ctx.jira.issue(issue_id, [*ctx.fields.jira_ids(), "project"])
    except JiraError as exc:
        if exc.status != 404:
            raise
        link = engine.get_link(issue_id)
        if link is not None and not link[1].get("gone"):
            task = engine.get_task(link[0])
            key = link[1].get("key", issue_id)
            engine.mark_gone(ctx, "pull", task, key, f"{key} was deleted in Jira")
            if task is not None:
                engine.put_link(task["id"], issue_id, {**link[1], "gone": True})
        return
    project = ((issue.get("fields") or {}).get("project") or {}).get("key")
    if project is not None and project != ctx.settings["project_key"]:
        return  # not ours (a forged or misrouted delivery)
    pull.apply_issues(ctx, [issue], respect_leases=False)


Handler = plugin.handler()
