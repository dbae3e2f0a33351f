"""Jira emulator benchmark: seeding time, and how fast a client can page through /search/jql.

    PYTHONPATH=src .venv/bin/python bench/jira_emulator.py [--issues 10000] [--passes 3]

Seeding is timed in-process (`JiraEmulator.seed`, in memory and into a SQLite state file).
Paging runs against `corral jira-emulator` in a subprocess (so client and server do not share
one interpreter), over loopback with a plain httpx client: `GET /rest/api/3/search/jql` with
`fields=*navigable` and `maxResults=100`, following `nextPageToken` to the end, as a sync does.
The baseline, measured in the same run, is the cheapest request the API has
(`GET /serverInfo`), so the ratio shows what a page costs beyond a bare round trip.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from corral.testing.jira import DEFAULT_USERS, JiraEmulator

ROOT = Path(__file__).resolve().parent.parent


def time_seeding(issues: int, state_file: Path | None) -> float:
    emulator = JiraEmulator(state_file=state_file)
    try:
        started = time.perf_counter()
        emulator.seed(issues, seed=1)
        return time.perf_counter() - started
    finally:
        emulator.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_emulator(issues: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "jira-emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--issues",
            str(issues),
            "--seed",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise SystemExit(f"the emulator exited: {err.decode()}")
        try:
            httpx.get(url + "/rest/api/3/serverInfo", auth=DEFAULT_USERS[0].basic_auth())
            return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the emulator did not start within 60 s")


def page_through(client: httpx.Client, jql: str, fields: str, page_size: int) -> tuple[int, int]:
    """(pages, issues) of one full pass through the search results."""
    pages = issues = 0
    token: str | None = None
    while True:
        params = {"jql": jql, "fields": fields, "maxResults": str(page_size)}
        if token:
            params["nextPageToken"] = token
        response = client.get("/rest/api/3/search/jql", params=params)
        response.raise_for_status()
        page = response.json()
        pages += 1
        issues += len(page["issues"])
        token = page.get("nextPageToken")
        if page.get("isLast") or not token:
            return pages, issues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    memory = time_seeding(args.issues, None)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = time_seeding(args.issues, Path(tmp) / "jira.sqlite")
    print(f"seed {args.issues} issues: {memory:.2f} s in memory, {sqlite:.2f} s into SQLite")

    process, url = start_emulator(args.issues)
    try:
        user = DEFAULT_USERS[0]
        with httpx.Client(base_url=url, auth=user.basic_auth(), timeout=60) as client:
            started = time.perf_counter()
            rounds = 500
            for _ in range(rounds):
                client.get("/rest/api/3/serverInfo").raise_for_status()
            baseline = (time.perf_counter() - started) / rounds

            jql = "project = DEMO ORDER BY key ASC"
            for fields in ("*navigable", "id"):
                rates = []
                for _ in range(args.passes):
                    started = time.perf_counter()
                    pages, issues = page_through(client, jql, fields, args.page_size)
                    elapsed = time.perf_counter() - started
                    rates.append((pages / elapsed, issues / elapsed, elapsed / pages))
                    if issues != args.issues:
                        raise SystemExit(f"paging returned {issues} of {args.issues} issues")
                pages_s, issues_s, per_page = (
                    statistics.median(r[i] for r in rates) for i in range(3)
                )
                print(
                    f"search/jql fields={fields} maxResults={args.page_size}: "
                    f"{pages_s:.1f} pages/s, {issues_s:,.0f} issues/s "
                    f"({per_page * 1000:.1f} ms/page = {per_page / baseline:.1f}x the "
                    f"{baseline * 1000:.2f} ms of GET /serverInfo; median of {args.passes})"
                )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
