"""jira-sync benchmark against the Jira emulator (issue 7, point 7).

    .venv/bin/python bench/sync.py [--issues 10000] [--changes 100] [--runs 3]

Prints, from one run: a bare fetch of every page with plain httpx (the baseline; measured after
a first pass, as the emulator caches each issue's rendered JSON and the sync reads it warm), the
full sync into an empty task store, an incremental sync with no changes, one after `--changes`
issues were edited in Jira, issues per second, and the host's peak RSS.

Between the baseline and the sync it prints the floor under any Python sync plugin, from the
`fetch-floor` plugin (bench/plugins/): the same pages fetched and parsed inside the sandbox, then
also written as minimal tasks with links. The floor over the baseline is the price of the
sandbox and of a Python guest; the full sync over the floor is jira-sync's own work.

The baseline, the floors and the full sync are each the best of `--runs` (on a shared 2-core
machine single runs vary by a third), each run that writes into a new host and store.
Targets (2 cores): full sync <= 10 s and <= 2.5x the bare fetch; no-change incremental <= 1 s;
100 changes <= 2 s.

The emulator runs in its own process (`corral jira-emulator`), as Jira runs on its own machine:
in the host's process its threads and its 10,000 issues (walked by every full garbage
collection) would take the host's interpreter for work no real Jira puts there.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from jira_emulator import start_emulator

from corral import PluginHost
from corral.build import build_cached
from corral.testing.jira import DEFAULT_USERS, User

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ["summary", "description", "status", "priority", "assignee", "labels", "duedate"]
FIELDS += ["updated"]  # what jira-sync asks for


def bare_fetch(url: str, user: User, page_size: int) -> int:
    """Every issue page by page with httpx: what the sync cannot beat."""
    count, token = 0, None
    with httpx.Client(base_url=url, auth=user.basic_auth(), timeout=60) as client:
        while True:
            body: dict[str, Any] = {
                "jql": 'project = "DEMO" ORDER BY key ASC',
                "fields": FIELDS,
                "maxResults": page_size,
            }
            if token:
                body["nextPageToken"] = token
            page = client.post("/rest/api/3/search/jql", json=body).json()
            count += len(page["issues"])
            token = page.get("nextPageToken")
            if page.get("isLast") or not token:
                return count


def compile_elsewhere(bundle: Path, cache: Path) -> None:
    """Verify the bundle (which compiles it) in a child process, so that a compile (hundreds of
    MiB for a Python plugin, once per machine) fills the cache there, not this host's peak RSS."""
    code = (
        "import sys; from corral import PluginHost; "
        "host = PluginHost(data_dir=sys.argv[2], cache_dir=sys.argv[3]); "
        "host.verify(sys.argv[1]); host.close()"
    )
    with tempfile.TemporaryDirectory() as data:
        subprocess.run([sys.executable, "-c", code, str(bundle), data, str(cache)], check=True)


def clocked(action: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds `action` took, its result)."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def best(label: str, runs: int, action: Callable[[], tuple[float, Any]]) -> tuple[float, Any]:
    """The fastest of `runs` runs of `action`, which times itself (the fastest is the least
    disturbed by the rest of the machine), printed with the slowest; returns it and the last
    result."""
    times, result = [], None
    for _ in range(runs):
        seconds, result = action()
        times.append(seconds)
    spread = f"  (slowest of {runs}: {max(times):.2f} s)" if runs > 1 else ""
    print(f"{label:<34} {min(times):8.2f} s{spread}")
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="best of how many (default 3)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="corral-bench-sync-"))
    emulator, url = start_emulator(args.issues)
    user, editor = DEFAULT_USERS[0], DEFAULT_USERS[1]
    (work / "token").write_text(user.api_token)
    for source in (ROOT / "plugins" / "jira-sync", ROOT / "bench" / "plugins" / "fetch-floor"):
        bundle = build_cached(source, ROOT / ".corral-build" / "bundles")
        shutil.copytree(bundle.directory, work / "plugins" / source.name)
        compile_elsewhere(work / "plugins" / source.name, ROOT / ".corral-build" / "compiled")
    hosts: list[PluginHost] = []
    stores = itertools.count()
    http = {
        "allowed_hosts": [url],
        "max_requests_per_call": 100_000,
        "rate_limit": {"requests_per_second": 100_000, "burst": 100_000},
    }
    credentials = [
        {"hosts": [url], "scheme": "basic", "username": user.email,
         "secret": f"file:{work / 'token'}"}
    ]  # fmt: skip
    jql = 'project = "DEMO" ORDER BY key ASC'

    def new_host() -> PluginHost:
        """A host over an empty task store, for a full sync (or a floor run) from nothing."""
        host = PluginHost(
            plugin_dirs=[work / "plugins"],
            data_dir=work / f"data-{next(stores)}",
            cache_dir=ROOT / ".corral-build" / "compiled",
            plugins={
                "jira-sync": {
                    "grant": ["network.http.outbound", "config.read", "task.read",
                              "task.write", "kv"],
                    "config": {"base_url": url, "project_key": "DEMO",
                               "page_size": args.page_size},
                    "http": http,
                    "credentials": credentials,
                },
                "fetch-floor": {
                    "grant": ["network.http.outbound", "config.read", "task.write"],
                    "config": {"base_url": url, "jql": jql, "fields": FIELDS,
                               "page_size": args.page_size},
                    "http": http,
                    "credentials": credentials,
                },
            },
        )  # fmt: skip
        host.load()
        hosts.append(host)
        return host

    def floor(write: bool) -> tuple[float, Any]:
        host = new_host()
        try:
            seconds, answer = clocked(lambda: host.call("fetch-floor", "fetch", {"write": write}))
        finally:  # closed now: the peak RSS printed is the sync's
            hosts.remove(host)
            host.close()
        assert answer["issues"] == args.issues, answer  # and every batch written, or it raised
        return seconds, answer

    def full_sync() -> tuple[float, Any]:
        host = new_host()  # loading (and a first compile) is not the sync's time
        seconds, report = clocked(lambda: host.sync("jira-sync", full=True))
        assert report.counts["pull"].created == args.issues, report
        return seconds, report

    try:
        # The emulator keeps each issue's rendered JSON: the first pass pays for rendering,
        # which the syncs after it do not, so the baseline is taken from the passes after.
        best(
            "bare fetch, first (renders)",
            1,
            lambda: clocked(lambda: bare_fetch(url, user, args.page_size)),
        )
        bare, fetched = best(
            f"bare fetch ({args.issues} issues)",
            args.runs,
            lambda: clocked(lambda: bare_fetch(url, user, args.page_size)),
        )
        assert fetched == args.issues, fetched
        parsed, _ = best("floor: fetch + parse in a plugin", args.runs, lambda: floor(False))
        written, _ = best("floor: fetch + parse + write tasks", args.runs, lambda: floor(True))
        full, _ = best("full sync", args.runs, full_sync)
        host = hosts[-1]
        best("incremental, no changes", 1, lambda: clocked(lambda: host.sync("jira-sync")))
        with httpx.Client(base_url=url, auth=editor.basic_auth()) as client:
            for n in range(1, args.changes + 1):
                client.put(
                    f"/rest/api/3/issue/DEMO-{n}",
                    json={"fields": {"summary": f"bench edit DEMO-{n}"}},
                ).raise_for_status()
        _, changed = best(
            f"incremental, {args.changes} changed",
            1,
            lambda: clocked(lambda: host.sync("jira-sync")),
        )
        assert changed.counts["pull"].updated == args.changes, changed
        print(f"{'floor (parse) / bare fetch':<34} {parsed / bare:8.2f} x")
        print(f"{'floor (parse + write) / bare fetch':<34} {written / bare:8.2f} x")
        print(f"{'full sync / floor (parse + write)':<34} {full / written:8.2f} x")
        print(f"{'full sync / bare fetch':<34} {full / bare:8.2f} x")
        print(f"{'issues per second (full sync)':<34} {args.issues / full:8.0f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'peak RSS of the host':<34} {peak:8.0f} MiB")
    finally:
        for host in hosts:
            host.close()
        emulator.terminate()
        emulator.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
