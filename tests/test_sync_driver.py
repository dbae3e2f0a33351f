"""The sync driver (`corral.sync`, `PluginHost.sync`): slices, progress, resumption after
Ctrl-C and traps, protocol checks, conflicts — through real plugins in Wasmtime.

`synccount` (tests/plugins/) follows the protocol over made-up items, so every mechanism of
the driver can be provoked on purpose; the real jira-sync plugin, against the Jira emulator on
loopback, shows the same loop doing real work.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import corral.sync
from conftest import public_name
from corral import PluginError, PluginHost, PluginTimeout, ProtocolError
from corral.sync import SyncProgress, slice_budget_ms
from corral.tasks import TaskFilter
from corral.testing.jira import EmulatorHandle
from jira_sync_setup import PLUGIN, jira_sync_settings, running_jira

HostFactory = Callable[..., PluginHost]
GRANT = ["config.read", "kv"]


def synccount(**config: Any) -> dict[str, Any]:
    return {"synccount": {"grant": GRANT, "config": config}}


def test_public_names_match_all() -> None:
    public = {name for name in dir(corral.sync) if public_name(name)}
    assert public - {"cli"} == set(corral.sync.__all__)


@pytest.mark.parametrize(
    ("timeout_s", "budget_ms"), [(30.0, 5000), (10.0, 5000), (2.0, 1000), (0.1, 100)]
)
def test_slices_get_half_the_timeout_at_most_five_seconds(timeout_s: float, budget_ms: int) -> None:
    assert slice_budget_ms(timeout_s) == budget_ms


def test_a_run_goes_slice_by_slice_until_done(make_host: HostFactory) -> None:
    host = make_host(
        "synccount",
        plugins=synccount(items=12, per_slice=5, fail_items=[2], conflict_items=[7]),
    )
    seen: list[SyncProgress] = []
    report = host.sync("synccount", full=True, on_progress=seen.append)

    assert [p.processed for p in seen] == [5, 10, 12]
    assert [p.remaining for p in seen] == [7, 2, 0]
    assert [p.done for p in seen] == [False, False, True]
    assert {p.run_id for p in seen} == {report.run_id}
    assert report.calls == 3 and report.mode == "full"
    pull = report.counts["pull"]
    assert (pull.created, pull.conflicts, pull.errors) == (10, 1, 1)
    assert [(e.key, e.reason) for e in report.errors] == [("ITEM-2", "refused by the remote")]
    assert report.conflicts == 1 and report.open_conflicts == 1
    assert not report.clean


def test_a_clean_run_is_clean(make_host: HostFactory) -> None:
    host = make_host("synccount", plugins=synccount(items=3))
    report = host.sync("synccount")
    assert report.clean and report.mode == "incremental"
    assert report.counts["pull"].unchanged == 3


def test_ctrl_c_between_slices_stops_and_the_next_sync_resumes(make_host: HostFactory) -> None:
    host = make_host("synccount", plugins=synccount(items=10, per_slice=3))

    def interrupt_after_second(progress: SyncProgress) -> None:
        if progress.processed == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        host.sync("synccount", full=True, on_progress=interrupt_after_second)
    running = host.sync_connector("synccount").status().running
    assert running is not None and running["next"] == 6

    seen: list[SyncProgress] = []
    report = host.sync("synccount", on_progress=seen.append)
    assert report.run_id == running["run_id"] and report.mode == "full"
    assert [p.processed for p in seen] == [9, 10]
    assert report.counts["pull"].created == 10


def test_sigint_during_a_slice_is_held_until_the_slice_ends(make_host: HostFactory) -> None:
    host = make_host("synccount", plugins=synccount(items=6, per_slice=2, item_ms=150))
    seen: list[SyncProgress] = []

    def press_ctrl_c_during_the_first_slice(progress: SyncProgress) -> None:
        seen.append(progress)

    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        host.sync("synccount", on_progress=press_ctrl_c_during_the_first_slice)
    timer.join()
    # The slice that was running when Ctrl-C came finished and was reported; no other began.
    assert [p.processed for p in seen] == [2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert host.sync("synccount").counts["pull"].unchanged == 6


def test_a_slice_that_times_out_raises_and_the_run_resumes(
    make_host: HostFactory, tmp_path: Path, compiled_cache_dir: Path
) -> None:
    stalling = synccount(items=8, per_slice=2, stall_at=5)
    stalling["synccount"]["limits"] = {"execution_timeout": "1s"}
    host = make_host("synccount", plugins=stalling)
    seen: list[SyncProgress] = []
    with pytest.raises(PluginTimeout):
        host.sync("synccount", full=True, on_progress=seen.append)
    assert [p.processed for p in seen] == [2, 4]
    run_id = seen[0].run_id

    # The operator lifts the fault; the same data dir holds the saved cursor.
    with PluginHost(
        plugin_dirs=[tmp_path / "plugins"],
        data_dir=tmp_path / "data",
        cache_dir=compiled_cache_dir,
        plugins=synccount(items=8, per_slice=2),
    ) as fixed:
        fixed.load()
        report = fixed.sync("synccount")
    assert report.run_id == run_id
    assert report.counts["pull"].created == 8
    assert report.calls == 2


def test_an_answer_off_the_protocol_raises_protocol_error(make_host: HostFactory) -> None:
    host = make_host("synccount", plugins=synccount(items=2, bad_answer=True))
    expected = r"^plugin 'synccount': 'sync' answer: done: is required$"
    with pytest.raises(ProtocolError, match=expected):
        host.sync("synccount")


def test_a_plugin_that_does_not_speak_the_protocol(make_host: HostFactory) -> None:
    host = make_host("hello", plugins={"hello": {"grant": ["config.read"]}})
    with pytest.raises(PluginError, match="unknown command 'sync'"):
        host.sync("hello")


def test_conflicts_are_listed_and_resolved(make_host: HostFactory) -> None:
    host = make_host("synccount", plugins=synccount(items=4, conflict_items=[1, 3]))
    host.sync("synccount", full=True)
    conflicts = host.conflicts("synccount")
    assert [(c.id, c.task_id, c.external_key, c.field) for c in conflicts] == [
        ("c-1", "t-1", "ITEM-1", "title"),
        ("c-3", "t-3", "ITEM-3", "title"),
    ]
    assert (conflicts[0].base, conflicts[0].local, conflicts[0].remote) == ("old", "mine", "theirs")

    taken = host.resolve("synccount", "c-1", take="remote")
    assert (taken.resolved, taken.value) == ("c-1", "theirs")
    assert (taken.pushed, taken.pulled) == (False, True)
    chosen = host.resolve("synccount", "c-3", take="value", value=None)
    assert (chosen.value, chosen.pushed, chosen.pulled) == (None, True, True)
    assert host.conflicts("synccount") == []
    with pytest.raises(PluginError, match="no open conflict 'c-1'") as caught:
        host.resolve("synccount", "c-1", take="local")
    assert caught.value.kind == "not-found"
    with pytest.raises(ValueError, match='take must be "local", "remote" or "value"'):
        host.resolve("synccount", "c-1", take="mine")  # type: ignore[arg-type]


def test_a_dry_run_reports_without_recording_conflicts(make_host: HostFactory) -> None:
    host = make_host("synccount", plugins=synccount(items=3, conflict_items=[0]))
    report = host.sync("synccount", dry_run=True)
    assert report.dry_run and report.conflicts == 1 and report.open_conflicts == 0


# --- the real jira-sync plugin against the Jira emulator -----------------------------------


def _jira_host(make_host: HostFactory, tmp_path: Path, jira: EmulatorHandle) -> PluginHost:
    # Pages of 5 and a 2 s timeout (slices of about 1 s): 150 issues take several slices.
    settings = jira_sync_settings(jira, tmp_path / "token", timeout="2s", page_size=5)
    return make_host(PLUGIN, plugins={PLUGIN: settings})


def _task_count(host: PluginHost) -> int:
    return len(host.task_store.query(TaskFilter(), None, 500).items)


def test_jira_sync_runs_in_slices_with_progress(make_host: HostFactory, tmp_path: Path) -> None:
    with running_jira(150) as jira:
        host = _jira_host(make_host, tmp_path, jira)
        seen: list[SyncProgress] = []
        report = host.sync(PLUGIN, full=True, on_progress=seen.append)
        assert report.calls == len(seen) >= 2
        assert [p.done for p in seen] == [False] * (len(seen) - 1) + [True]
        pulled = [p.counts["pull"].processed for p in seen]
        assert pulled == sorted(pulled) and pulled[-1] == 150
        assert report.counts["pull"].created == 150 and report.clean
        assert _task_count(host) == 150

        again = host.sync(PLUGIN)
        assert again.mode == "incremental" and again.clean
        assert again.counts["pull"].created == again.counts["pull"].updated == 0


def test_jira_sync_interrupted_by_ctrl_c_resumes(make_host: HostFactory, tmp_path: Path) -> None:
    with running_jira(150) as jira:
        host = _jira_host(make_host, tmp_path, jira)

        def ctrl_c(progress: SyncProgress) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            host.sync(PLUGIN, full=True, on_progress=ctrl_c)
        running = host.sync_connector(PLUGIN).status().running
        assert running is not None
        partial = _task_count(host)
        assert 0 < partial < 150

        report = host.sync(PLUGIN)
        assert report.run_id == running["run_id"] and report.mode == "full"
        assert report.counts["pull"].created == 150
        assert _task_count(host) == 150
