"""Deadlines are exact in both directions: never early by wall clock, and host functions stop
at the deadline instead of running past it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corral import ConfigError, PluginHost, PluginTimeout
from corral.tasks import TaskFilter

HostFactory = Callable[..., PluginHost]

# sum() over a range runs in C without returning to the bytecode loop, so it keeps the GIL
# for its whole run (sleeping or a Python loop would hand it over every 5 ms).
_GIL_HOG_ITEMS = 60_000_000


def _hold_the_gil(started: threading.Event) -> None:
    started.set()
    sum(range(_GIL_HOG_ITEMS))


def _largest_gap_until(done: threading.Event, gaps: list[float]) -> None:
    """Record the longest stretch in which this thread could not run, until `done`."""
    last, gap = time.monotonic(), 0.0
    while not done.is_set():
        time.sleep(0.002)
        now = time.monotonic()
        gap, last = max(gap, now - last), now
    gaps.append(gap)


def test_a_starved_epoch_ticker_never_ends_a_call_early(make_host: HostFactory) -> None:
    """An application thread holds the GIL just before each call: the ticker falls behind and
    catches up in a burst, which must not eat into the next call's 2 s budget."""
    host = make_host("misbehave")  # execution_timeout: 2s
    host.call("misbehave", "count", {"n": 1})  # the ticker is running
    for _ in range(3):
        started, done = threading.Event(), threading.Event()
        gaps: list[float] = []
        probe = threading.Thread(target=_largest_gap_until, args=(done, gaps))
        hog = threading.Thread(target=_hold_the_gil, args=(started,))
        probe.start()
        hog.start()
        started.wait()
        try:
            # 1.7 s of guest work in a 2 s budget; the call begins once the hog lets go.
            assert host.call("misbehave", "spin", {"seconds": 1.7}) > 0
        finally:
            hog.join()
            done.set()
            probe.join()
        assert gaps[0] > 0.3, "the hog did not starve other threads of the GIL"


ALL = ["network.http.outbound", "config.read", "task.read_write", "kv"]


def _tasks(n: int, prefix: str = "t") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "title": f"task {i}"} for i in range(n)]


def test_a_put_many_past_the_deadline_stores_nothing(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    """20,000 tasks in one batch (caps raised) against a 1 s limit: the guest builds them in
    about 0.5 s and storing them takes longer than the rest, so the host call is in flight at
    the deadline. The batch is rolled back and the call ends close to its deadline (it was
    committed, and the call ended 1.8 s late, before the fix)."""
    plugins = plugin_dir("hostapi")
    manifest = plugins / "hostapi" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("memory_limit: 64MB", "memory_limit: 256MB"))
    settings = {
        "grant": ALL,
        "limits": {"execution_timeout": "1s"},
        "tasks": {"max_batch_items": 200_000, "max_batch_bytes": "64MB"},
    }
    with PluginHost(
        plugin_dirs=[plugins],
        data_dir=tmp_path / "data",
        cache_dir=compiled_cache_dir,
        plugins={"hostapi": settings},
    ) as host:
        host.load()
        started = time.monotonic()
        try:
            outcome: Any = host.call(
                "hostapi", "tasks.upsert-generated", {"count": 20_000, "batch": 20_000}
            )
        except PluginTimeout as exc:
            outcome = exc
        elapsed = time.monotonic() - started
        assert isinstance(outcome, PluginTimeout) or outcome.get("error") == "timeout", outcome
        assert elapsed < 2.0, elapsed  # 2.8 s before the fix; about 1.05 s on an idle machine
        assert host.task_store.query(TaskFilter(), None, 10).items == []


def test_put_many_is_capped_in_items_and_bytes(make_host: HostFactory) -> None:
    host = make_host("hostapi", plugins={"hostapi": {"grant": ALL}})
    answer = host.call("hostapi", "tasks.put-many", {"tasks": _tasks(1001)})
    assert answer["error"] == "invalid-input"
    assert "1001 tasks" in answer["message"] and "max_batch_items" in answer["message"]
    big = [{"title": "x" * (1 << 20)} for _ in range(9)]
    answer = host.call("hostapi", "tasks.put-many", {"tasks": big})
    assert answer["error"] == "invalid-input" and "max_batch_bytes" in answer["message"]
    assert "ok" in host.call("hostapi", "tasks.put-many", {"tasks": _tasks(1000)})


def test_started_batches_are_written_in_order_and_answer_as_put_many(
    make_host: HostFactory,
) -> None:
    host = make_host("hostapi", plugins={"hostapi": {"grant": ALL}})
    first, second = _tasks(3, "a-"), [{"id": "a-0", "title": "again", "expected_version": 1}]
    answer = host.call("hostapi", "tasks.put-many-started", {"batches": [first, second]})
    assert answer["ok"] == [["a-0", "a-1", "a-2"], ["a-0"]]  # the second saw the first
    assert host.task_store.get("a-0").title == "again"
    # A batch's own errors come from its finish; the size is checked at start.
    stale = [{"id": "a-1", "title": "stale", "expected_version": 7}]
    answer = host.call("hostapi", "tasks.put-many-started", {"batches": [stale, _tasks(1, "b-")]})
    assert answer["ok"][0]["error"] == "conflict" and answer["ok"][1] == ["b-0"]
    big = [{"title": "x" * (1 << 20)} for _ in range(9)]
    answer = host.call("hostapi", "tasks.put-many-started", {"batches": [big]})
    assert answer["error"] == "invalid-input" and "max_batch_bytes" in answer["message"]
    # At most two unfinished; those left unfinished are written before the call ends.
    three = [_tasks(1, f"c{i}-") for i in range(3)]
    answer = host.call("hostapi", "tasks.put-many-started", {"batches": three, "finish": 0})
    assert answer["error"] == "invalid-input"
    assert "already has 2 batches started" in answer["message"]
    stored = {task.id for task in host.task_store.query(TaskFilter(), None, 100).items}
    assert {"c0-0", "c1-0"} <= stored and "c2-0" not in stored


def test_the_operator_sets_a_task_quota_per_plugin(make_host: HostFactory) -> None:
    host = make_host("hostapi", plugins={"hostapi": {"grant": ALL, "tasks": {"max_tasks": 5}}})
    host.task_store.put_many(_tasks(10, "host-"), actor="host")  # the host's own don't count
    assert len(host.call("hostapi", "tasks.put-many", {"tasks": _tasks(3)})["ok"]) == 3
    answer = host.call("hostapi", "tasks.put-many", {"tasks": _tasks(3, "more-")})
    assert answer["error"] == "invalid-input"
    assert answer["message"].endswith(
        'quota of 5 (PluginHost(plugins={"hostapi": {"tasks": {"max_tasks": ...}}}))'
    )
    # updates are not creations; deleting one frees its place
    assert "ok" in host.call("hostapi", "tasks.put-many", {"tasks": [{"id": "t0", "title": "x"}]})
    host.call("hostapi", "tasks.delete", {"id": "t1"})
    assert len(host.call("hostapi", "tasks.put-many", {"tasks": _tasks(3, "more-")})["ok"]) == 3
    assert len(host.task_store.query(TaskFilter(), None, 100).items) == 10 + 5


def test_task_options_are_validated_with_the_config(make_host: HostFactory) -> None:
    settings = {"grant": ALL, "tasks": {"max_batch_bytes": "0MB"}}
    with pytest.raises(ConfigError) as caught:
        make_host("hostapi", plugins={"hostapi": settings})
    assert str(caught.value) == (
        'PluginHost: plugins.hostapi.tasks.max_batch_bytes: "0MB" must be larger than zero'
    )
