"""The quick-start demo: two-way Jira sync in the sandbox, against a local Jira.

Run it with `python3 dev.py demo`. It starts the Jira emulator on a free loopback port with
seeded issues, builds the jira-sync plugin and loads it with the operator config a real site
would need (one allowlist line; the API token injected by the host, never seen by the plugin),
pulls every issue into the local task store, edits both sides — one field on both at once —
syncs again, and resolves the conflict that leaves.

Nothing leaves this machine. The built bundle is cached under .corral/bundles/ (keyed by a
hash of the plugin's sources) and the compiled component under .corral/, so only the first run
pays for componentize-py and Wasmtime's compiler.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from corral import PluginHost
from corral.build import build_cached
from corral.sync import SyncProgress, SyncReport
from corral.testing.jira import JiraEmulator, serve

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "jira-sync"
ISSUES = 150
TOKEN_ENV = "CORRAL_DEMO_JIRA_TOKEN"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache-dir", type=Path, default=ROOT / ".corral", help="built bundles and components"
    )
    parser.add_argument("--workdir", type=Path, help="plugins and data (default: CACHE_DIR/demo)")
    args = parser.parse_args(argv)
    cache: Path = args.cache_dir

    step("Build jira-sync (first run: about a minute; cached afterwards)")
    started = time.perf_counter()
    bundle = build_cached(ROOT / "plugins" / PLUGIN, cache / "bundles")
    say(f"bundle {bundle.directory.name} in {time.perf_counter() - started:.1f} s")

    # A fresh operator layout every run: the plugin dir, and the data dir with the task store
    # and the plugin's sync state.
    workdir: Path = args.workdir or cache / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(bundle.directory, workdir / "plugins" / PLUGIN)

    with serve(JiraEmulator(issues=ISSUES, seed=7)) as jira:
        me, colleague = jira.users[0], jira.users[1]
        step(f"A local Jira at {jira.url}: project DEMO, {ISSUES} issues")
        os.environ[TOKEN_ENV] = me.api_token
        settings = operator_config(jira.url, me.email)
        say(f"allowed_hosts: [{jira.url}]   credentials: basic {me.email} + env:{TOKEN_ENV}")
        with PluginHost(
            plugin_dirs=[workdir / "plugins"],
            data_dir=workdir / "data",
            cache_dir=cache / "compiled",
            plugins={PLUGIN: settings},
        ) as host:
            [info] = host.load()
            if info.state != "loaded":
                print(f"jira-sync did not load: {info.reason}", file=sys.stderr)
                return 1
            rest = httpx.Client(base_url=f"{jira.url}/rest/api/3", auth=jira.basic_auth(1))
            with rest:
                return run(host, rest, colleague.display_name)


def operator_config(url: str, email: str) -> dict[str, Any]:
    """What `plugins.jira-sync` in corral.yaml would say for this site."""
    return {
        "grant": ["network.http.outbound", "config.read", "task.read", "task.write", "kv"],
        "config": {
            "base_url": url,
            "project_key": "DEMO",
            "page_size": 25,
            "conflict_strategy": "remote-wins",
            # The title is where people disagree: ask a person.
            "field_mapping": {"title": {"jira": "summary", "conflict_strategy": "manual"}},
        },
        # Short slices, so the progress of 150 issues shows (a real site: leave the default).
        "limits": {"execution_timeout": "2s"},
        "http": {"allowed_hosts": [url]},
        "credentials": [
            {"hosts": [url], "scheme": "basic", "username": email, "secret": f"env:{TOKEN_ENV}"}
        ],
    }


def run(host: PluginHost, jira: httpx.Client, colleague: str) -> int:
    step("Full sync: every issue becomes a task")
    report = host.sync(PLUGIN, full=True, on_progress=show_progress)
    summarize(report)

    store = host.task_store
    # An issue still "To Do" to start here (To Do -> In Progress is one transition in Jira),
    # and the next two for a change in Jira and a change on both sides.
    issues = [jira.get(f"/issue/DEMO-{n}").json() for n in range(1, 11)]
    first = next(i for i in issues if i["fields"]["status"]["name"] == "To Do")
    second, third = [i for i in issues if i is not first][:2]
    started, changed, disputed = (store.get(f"jira-{i['id']}") for i in (first, second, third))

    step("Meanwhile, on both sides")
    store.put_many([{"id": started.id, "status": "in_progress"}], actor="host")
    say(f"you, here:       {first['key']} status    'todo' -> 'in_progress'")
    priority = "Lowest" if changed.priority in ("highest", "critical") else "Highest"
    edit(jira, second["key"], {"priority": {"name": priority}})
    who = f"{colleague}, in Jira:".ljust(17)
    say(f"{who}{second['key']} priority  {changed.priority!r} -> {priority!r}")
    mine, theirs = "Ship the sync demo", "Ship the sync demo (blocked on review)"
    store.put_many([{"id": disputed.id, "title": mine}], actor="host")
    edit(jira, third["key"], {"summary": theirs})
    say(f"both, unlike:    {third['key']} title     {mine!r} / {theirs!r}")

    step("Incremental sync: only what changed")
    report = host.sync(PLUGIN, on_progress=show_progress)
    summarize(report)
    status = jira.get(f"/issue/{first['key']}").json()["fields"]["status"]["name"]
    say(f"{first['key']} in Jira is now {status!r} (through its workflow's transition)")
    say(f"{second['key']}'s task now has priority {store.get(changed.id).priority!r}")

    [conflict] = host.conflicts(PLUGIN)
    step(f"Open conflict {conflict.id}: {conflict.external_key} {conflict.field}")
    say(f"base   {conflict.base!r}")
    say(f"local  {conflict.local!r}")
    say(f"remote {conflict.remote!r}")
    say(f"(the CLI: corral conflicts {PLUGIN} resolve {conflict.id} --take local)")

    resolution = host.resolve(PLUGIN, conflict.id, take="local")
    step(f"Resolved: keep the local title (written to Jira: {resolution.pushed})")
    summary = jira.get(f"/issue/{third['key']}").json()["fields"]["summary"]
    say(f"Jira {third['key']} summary: {summary!r}")
    say("task title:".ljust(len(third["key"]) + 15) + f"{store.get(disputed.id).title!r}")
    report = host.sync(PLUGIN)
    say(f"one more sync: clean={report.clean}, open conflicts={report.open_conflicts}")
    return 0 if report.clean else 1


def edit(jira: httpx.Client, key: str, fields: dict[str, Any]) -> None:
    jira.put(f"/issue/{key}", json={"fields": fields}).raise_for_status()


def show_progress(progress: SyncProgress) -> None:
    counts = progress.counts.get(progress.phase)
    left = "" if progress.remaining is None else f", {progress.remaining} left"
    done = counts.processed if counts is not None else progress.processed
    say(f"… {progress.phase:<8} {done} items{left}")


def summarize(report: SyncReport) -> None:
    for direction, counts in report.counts.items():
        parts = [
            f"{n} {what.rstrip('s') if n == 1 else what}" for what, n in vars(counts).items() if n
        ]
        say(f"{direction}: {', '.join(parts) or 'nothing to do'}")
    for error in report.errors:
        say(f"error {error}")
    say(f"{report.duration_ms / 1000:.2f} s, {report.calls} call(s); "
        f"open conflicts: {report.open_conflicts}")  # fmt: skip


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
