"""jira-sync under the faults of the live service: rate limits, lost answers, search lag,
changes while paging, a far time zone, and a process killed in the middle of a sync."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse, Response

from corral.testing.jira import ApiCall, DropConnection, make_user

from .harness import PLUGIN, Bench


class Throttle:
    """Answers like Jira's rate limiter: 429 (or 503) with `Retry-After`, as `refuse` decides."""

    def __init__(self, refuse: Callable[[int], str | None], only: str | None = None) -> None:
        self.refuse = refuse
        self.only = only
        """Throttle only this user's requests (an email), or everyone's."""
        self.seen = 0
        self.refused = 0

    async def before(self, call: ApiCall) -> Response | None:
        if self.only is not None and (call.user is None or call.user.email != self.only):
            return None
        self.seen += 1
        retry_after = self.refuse(self.seen)
        if retry_after is None:
            return None
        self.refused += 1
        status = 503 if self.seen % 7 == 0 else 429
        return JSONResponse(
            {"errorMessages": ["Rate limit exceeded."], "errors": {}},
            status_code=status,
            headers={"Retry-After": retry_after, "RateLimit-Reason": "jira-burst-based"},
        )

    async def after(self, call: ApiCall, response: Response) -> None:
        return None


def test_a_429_storm_is_waited_out(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=25, page_size=5)
    draws = random.Random(4)
    # Four in ten requests refused; now and then Jira asks for a whole second.
    storm = Throttle(lambda n: None if draws.random() > 0.4 else ("1" if n % 9 == 0 else "0"))
    bench.jira.emulator.add_hook(storm)

    report = bench.sync(full=True)

    assert report.counts["pull"].created == 25 and report.clean, report
    assert storm.refused >= 3


def test_a_slice_out_of_time_ends_with_progress_saved(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=20, page_size=2)
    blocked = {"from": 4}
    # After a few requests Jira asks for a minute's wait, far beyond a 1.5 s slice.
    hook = Throttle(lambda n: "60" if n >= blocked["from"] else None)
    bench.jira.emulator.add_hook(hook)

    first = bench.call("sync", {"mode": "full", "budget_ms": 1500})

    assert not first["done"] and first["counts"]["pull"]["created"] >= 2, first
    blocked["from"] = 10**9  # the minute has passed
    second = bench.call("sync", {"mode": "full", "budget_ms": 1500})
    assert second["run_id"] == first["run_id"]
    assert second["counts"]["pull"]["created"] > first["counts"]["pull"]["created"]
    while not second["done"]:
        second = bench.call("sync", {"mode": "full", "budget_ms": 1500})
    assert second["counts"]["pull"]["created"] == 20 and len(bench.tasks()) == 20


class DropFirstCreate:
    """Applies the first `POST /issue`, then closes the connection without an answer."""

    def __init__(self) -> None:
        self.dropped = 0

    async def before(self, call: ApiCall) -> None:
        return None

    async def after(self, call: ApiCall, response: Any) -> None:
        if call.method == "POST" and call.path.endswith("/issue") and not self.dropped:
            self.dropped += 1
            raise DropConnection()


def test_create_is_idempotent_when_its_answer_is_lost(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=0, create_remote=True)
    bench.jira.emulator.search_lag = timedelta(seconds=30)
    dropper = DropFirstCreate()
    bench.jira.emulator.add_hook(dropper)
    [task] = bench.host.task_store.put_many([{"title": "only once"}], actor="host")

    first = bench.sync()
    assert dropper.dropped == 1 and first.errors  # the answer was lost
    second = bench.sync()  # search does not show it yet: nothing is created again
    assert len(bench.issue_keys()) == 1 and second.counts["push"].created == 0
    bench.jira.emulator.clock.advance(31)
    third = bench.sync()

    assert len(bench.issue_keys()) == 1 and third.clean, third
    [key] = bench.issue_keys()
    assert bench.fields(key)["summary"] == "only once"
    bench.update_issue(key, summary="edited in Jira")
    bench.jira.emulator.clock.advance(31)
    assert bench.sync().counts["pull"].created == 0
    assert list(bench.tasks()) == [task.id]  # linked: the edit reached the same task
    assert bench.tasks()[task.id].title == "edited in Jira"


def test_search_lag_is_covered_by_the_overlapping_window(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=2)
    bench.sync(full=True)
    early, late = bench.issue_keys()
    bench.jira.emulator.search_lag = timedelta(seconds=20)
    bench.update_issue(early, summary="early edit")
    bench.jira.emulator.clock.advance(15)
    bench.update_issue(late, summary="late edit")
    bench.jira.emulator.clock.advance(10)  # the early edit is searchable, the late one not yet

    bench.sync()
    assert bench.task_of(early).title == "early edit"
    assert bench.task_of(late).title != "late edit"
    bench.jira.emulator.clock.advance(15)
    bench.sync()
    assert bench.task_of(late).title == "late edit"


def test_paging_while_issues_change_misses_nothing(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=30, page_size=5)
    bench.sync(full=True)
    keys = bench.issue_keys()
    emulator = bench.jira.emulator
    edited: list[str] = []

    class EditWhilePaging:
        async def before(self, call: ApiCall) -> None:
            if call.path.endswith("/search/jql") and len(edited) < len(keys):
                key = keys[len(edited)]
                issue = emulator.store.get(key)
                assert issue is not None
                emulator.store.update(issue, {"summary": f"edited {key}"}, bench.jira.users[1])
                edited.append(key)

        async def after(self, call: ApiCall, response: Any) -> None:
            return None

    hook = EditWhilePaging()
    emulator.add_hook(hook)
    bench.sync(full=True)
    emulator.remove_hook(hook)
    assert len(edited) > 2  # edits landed on pages the run had already read
    bench.sync()

    for key in edited:
        assert bench.task_of(key).title == f"edited {key}"


def test_a_jira_user_far_from_utc(make_bench: Any) -> None:
    users = (
        make_user("kiri@example.com", "kiri-token", "Pacific/Kiritimati"),  # UTC+14
        make_user("bob@example.com", "bob-token", "Pacific/Pago_Pago"),  # UTC-11
    )
    bench: Bench = make_bench(issues=3, emulator={"users": users})
    bench.sync(full=True)
    key = bench.issue_keys()[0]
    bench.jira.emulator.clock.advance(90)
    bench.update_issue(key, summary="edited a minute and a half later")
    report = bench.sync()
    assert report.counts["pull"].updated == 1
    assert bench.task_of(key).title == "edited a minute and a half later"


class Latency:
    async def before(self, call: ApiCall) -> None:
        await asyncio.sleep(self.seconds)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def after(self, call: ApiCall, response: Response) -> None:
        return None


_SLICES = """
import json, sys
from corral import PluginHost
args = json.loads(sys.argv[1])
host = PluginHost(plugin_dirs=[args["plugins"]], data_dir=args["data"],
                  cache_dir=args["cache"], plugins=args["operator"])
host.load()
while True:
    answer = host.call("jira-sync", "sync", {"mode": "full", "budget_ms": 400})
    print(json.dumps(answer), flush=True)
    if answer["done"]:
        break
"""


def test_a_sync_killed_between_slices_resumes(
    make_bench: Any, tmp_path: Path, compiled_cache_dir: Path
) -> None:
    bench: Bench = make_bench(issues=60, page_size=4)
    bench.jira.emulator.add_hook(Latency(0.04))
    args = {
        "plugins": str(tmp_path / "plugins"),
        "data": str(tmp_path / "data"),
        "cache": str(compiled_cache_dir),
        "operator": {PLUGIN: bench.operator},
    }
    bench.host.close()
    child = subprocess.Popen(
        [sys.executable, "-c", _SLICES, json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    first = json.loads(child.stdout.readline())
    assert not first["done"]
    child.send_signal(signal.SIGKILL)
    child.wait()

    bench.reopen()
    report = bench.sync(full=True)

    assert report.run_id == first["run_id"]
    assert len(bench.tasks()) == 60
    assert report.counts["pull"].created == 60, report
