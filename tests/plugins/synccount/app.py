"""Follows the sync protocol (plugin-sdk/sync-protocol.md) over `items` made-up items, so the
driver's slicing, resumption, errors, traps and conflicts can be tested without a remote.

Each item is "pulled" in turn; its cursor is saved in kv after every item, so a killed host
resumes at the next one. `stall_at` spins forever at that item (the slice times out);
`fail_items` and `conflict_items` become item errors and open conflicts.
"""

import json
import time

from corral_sdk import Plugin, errors
from wit_world.imports import config, kv

plugin = Plugin()
DIRECTIONS = ("pull", "push")
OUTCOMES = ("created", "updated", "unchanged", "conflicts", "errors", "deleted")


def _settings():
    return json.loads(config.get_all() or "{}")


def _load(key, default):
    try:
        return json.loads(kv.get(key))
    except errors.Err as error:
        if errors.is_not_found(error):
            return default
        raise


def _save(key, value):
    kv.set(key, json.dumps(value).encode())


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _new_run(args):
    return {
        "run_id": f"r-{time.time_ns()}",
        "mode": args.get("mode", "incremental"),
        "dry_run": bool(args.get("dry_run", False)),
        "next": 0,
        "counts": {d: dict.fromkeys(OUTCOMES, 0) for d in DIRECTIONS},
        "errors": [],
        "conflicts": 0,
        "started_at": _now(),
        "started_ms": time.time() * 1000,
        "slices": 0,
    }


@plugin.command("sync")
def sync(args):
    s = _settings()
    items = s.get("items", 10)
    stop_at = time.monotonic() + args.get("budget_ms", 5000) * 0.6 / 1000
    run = _load("run", None)
    if run is None or args.get("restart"):
        run = _new_run(args)
    run["slices"] += 1
    slice_errors = []
    done_here = 0
    while run["next"] < items and done_here < s.get("per_slice", 5):
        if done_here and time.monotonic() >= stop_at:
            break
        item = run["next"]
        if item == s.get("stall_at"):
            while True:
                pass
        time.sleep(s.get("item_ms", 0) / 1000)
        if item in s.get("fail_items", []):
            outcome = "errors"
            error = {"key": f"ITEM-{item}", "direction": "pull", "reason": "refused by the remote"}
            slice_errors.append(error)
            run["errors"].append(error)
        elif item in s.get("conflict_items", []):
            outcome = "conflicts"
            run["conflicts"] += 1
            if not run["dry_run"]:
                conflicts = _load("conflicts", [])
                conflicts.append(
                    {
                        "id": f"c-{item}",
                        "task_id": f"t-{item}",
                        "external_key": f"ITEM-{item}",
                        "field": "title",
                        "base": "old",
                        "local": "mine",
                        "remote": "theirs",
                        "detected_at": _now(),
                    }
                )
                _save("conflicts", conflicts)
        else:
            outcome = "created" if run["mode"] == "full" else "unchanged"
        run["counts"]["pull"][outcome] += 1
        run["next"] = item + 1
        done_here += 1
        _save("run", run)
    done = run["next"] >= items
    report = None
    if done:
        report = {
            "run_id": run["run_id"],
            "mode": run["mode"],
            "dry_run": run["dry_run"],
            "started_at": run["started_at"],
            "finished_at": _now(),
            "duration_ms": time.time() * 1000 - run["started_ms"],
            "counts": run["counts"],
            "errors": run["errors"],
            "conflicts": run["conflicts"],
            "slices": run["slices"],
        }
        _save("runs", [report, *_load("runs", [])][:20])
        kv.delete("run")
    answer = {
        "run_id": run["run_id"],
        "mode": run["mode"],
        "dry_run": run["dry_run"],
        "done": done,
        "phase": "finished" if done else "pull",
        "counts": run["counts"],
        "remaining": items - run["next"],
        "errors": slice_errors,
        "report": report,
    }
    if s.get("bad_answer"):
        del answer["done"]
    return answer


@plugin.command("status")
def status(args):
    run = _load("run", None)
    running = None
    if run is not None:
        running = {k: run[k] for k in ("run_id", "mode", "started_at", "counts")}
        running["phase"] = "pull"
        running["next"] = run["next"]
    return {
        "running": running,
        "last_runs": _load("runs", []),
        "open_conflicts": len(_load("conflicts", [])),
        "cursor": None if run is None else {"next": run["next"]},
    }


@plugin.command("conflicts")
def list_conflicts(args):
    return {"conflicts": _load("conflicts", [])}


@plugin.command("resolve")
def resolve(args):
    conflicts = _load("conflicts", [])
    found = [c for c in conflicts if c["id"] == args.get("id")]
    if not found:
        raise errors.not_found(f"no open conflict {args.get('id')!r}")
    take = args.get("take")
    if take not in ("local", "remote", "value"):
        raise errors.invalid_input(f"take must be local, remote or value, not {take!r}")
    value = args.get("value") if take == "value" else found[0][take]
    _save("conflicts", [c for c in conflicts if c["id"] != args["id"]])
    return {
        "resolved": args["id"],
        "field": found[0]["field"],
        "value": value,
        "pushed": take != "remote",
        "pulled": take != "local",
    }


Handler = plugin.handler()
