"""jira-sync benchmark against the Jira emulator (issue 7, point 7).

    .venv/bin/python bench/sync.py [--issues 10000] [--changes 100]

Prints, from one run: a bare fetch of every page with plain httpx (the baseline; measured on a
second pass, as the emulator caches each issue's rendered JSON and the sync reads it warm), the
full sync, an incremental sync with no changes, one after `--changes` issues were edited in Jira,
issues per second, and the host's peak RSS. Targets (2 cores): full sync <= 10 s and
<= 2.5x the bare fetch; no-change incremental <= 1 s; 100 changes <= 2 s.

The emulator runs in its own process (`corral jira-emulator`), as Jira runs on its own machine:
in the host's process its threads and its 10,000 issues (walked by every full garbage
collection) would take the host's interpreter for work no real Jira puts there.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from jira_emulator import start_emulator

from corral import PluginHost
from corral.build import build_cached
from corral.testing.jira import DEFAULT_USERS

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ["summary", "description", "status", "priority", "assignee", "labels", "duedate"]
FIELDS += ["updated"]  # what jira-sync asks for


def bare_fetch(url: str, auth: tuple[str, str], page_size: int) -> int:
    """Every issue page by page with httpx: what the sync cannot beat."""
    count, token = 0, None
    with httpx.Client(base_url=url, auth=auth, timeout=60) as client:
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


def timed(label: str, action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    print(f"{label:<34} {elapsed:8.2f} s")
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    bundle = build_cached(ROOT / "plugins" / "jira-sync", ROOT / ".corral-build" / "bundles")
    work = Path(tempfile.mkdtemp(prefix="corral-bench-sync-"))
    emulator, url = start_emulator(args.issues)
    try:
        shutil.copytree(bundle.directory, work / "plugins" / "jira-sync")
        user, editor = DEFAULT_USERS[0], DEFAULT_USERS[1]
        (work / "token").write_text(user.api_token)
        host = PluginHost(
            plugin_dirs=[work / "plugins"],
            data_dir=work / "data",
            cache_dir=ROOT / ".corral-build" / "compiled",
            plugins={
                "jira-sync": {
                    "grant": ["network.http.outbound", "config.read", "task.read",
                              "task.write", "kv"],
                    "config": {"base_url": url, "project_key": "DEMO",
                               "page_size": args.page_size},
                    "http": {"allowed_hosts": [url], "max_requests_per_call": 100_000,
                             "rate_limit": {"requests_per_second": 100_000, "burst": 100_000}},
                    "credentials": [{"hosts": [url], "scheme": "basic",
                                     "username": user.email,
                                     "secret": f"file:{work / 'token'}"}],
                }
            },
        )  # fmt: skip
        host.load()
        with host:
            # The emulator keeps each issue's rendered JSON: the first pass pays for
            # rendering, which the sync after it would not, so the baseline is the second.
            timed(
                "bare fetch, first (renders)",
                lambda: bare_fetch(url, user.basic_auth(), args.page_size),
            )
            bare, fetched = timed(
                f"bare fetch ({args.issues} issues)",
                lambda: bare_fetch(url, user.basic_auth(), args.page_size),
            )
            assert fetched == args.issues, fetched
            full, report = timed("full sync", lambda: host.sync("jira-sync", full=True))
            assert report.counts["pull"].created == args.issues, report
            timed("incremental, no changes", lambda: host.sync("jira-sync"))
            keys = [f"DEMO-{n}" for n in range(1, args.changes + 1)]
            with httpx.Client(base_url=url, auth=editor.basic_auth()) as client:
                for key in keys:
                    client.put(
                        f"/rest/api/3/issue/{key}",
                        json={"fields": {"summary": f"bench edit {key}"}},
                    ).raise_for_status()
            _, changed = timed(
                f"incremental, {args.changes} changed", lambda: host.sync("jira-sync")
            )
            assert changed.counts["pull"].updated == args.changes, changed
            print(f"{'full sync / bare fetch':<34} {full / bare:8.2f} x")
            print(f"{'issues per second (full sync)':<34} {args.issues / full:8.0f}")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{'peak RSS of the host':<34} {peak:8.0f} MiB")
    finally:
        emulator.terminate()
        emulator.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
