"""`corral sync` and `corral conflicts` in real subprocesses: exit codes, --json, progress lines
when stderr is not a terminal, and a `corral sync` killed with SIGKILL between slices resuming;
with the protocol test plugin `synccount`, and with the real jira-sync against the emulator.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from corral.testing.jira import EmulatorHandle
from jira_sync_setup import PLUGIN, jira_sync_settings, running_jira

ROOT = Path(__file__).resolve().parent.parent
RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def host_config(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> Callable[[str, dict[str, Any]], Path]:
    """Write corral.yaml for a host whose only plugin is `name`, with these settings."""

    def write(name: str, settings: dict[str, Any]) -> Path:
        path = tmp_path / "corral.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "plugin_dirs": [str(tmp_path / "plugins")],
                    "data_dir": str(tmp_path / "data"),
                    "cache_dir": str(compiled_cache_dir),
                    "plugins": {name: settings},
                }
            )
        )
        if not (tmp_path / "plugins" / name).exists():
            plugin_dir(name)
        return path

    return write


@pytest.fixture
def write_config(host_config: Callable[[str, dict[str, Any]], Path]) -> Callable[..., Path]:
    """corral.yaml for a host whose only plugin is synccount, configured as given."""

    def write(limits: dict[str, Any] | None = None, **config: Any) -> Path:
        settings: dict[str, Any] = {"grant": ["config.read", "kv"], "config": config}
        if limits:
            settings["limits"] = limits
        return host_config("synccount", settings)

    return write


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}


def _command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "corral.cli", *map(str, args)]


def _start_sync(*args: str | Path, cwd: Path) -> subprocess.Popen[str]:
    """`corral sync ARGS` running in the background, its stderr (the progress lines) piped."""
    return subprocess.Popen(
        _command("sync", *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=cwd,
    )


def _kill_sync_after(name: str, config: Path, *, slices: int, cwd: Path) -> list[str]:
    """Start `corral sync NAME --full`, SIGKILL it once it reported `slices` slices; their lines."""
    process = _start_sync(name, "--full", "--config", config, cwd=cwd)
    assert process.stderr is not None
    lines = [process.stderr.readline().rstrip("\n") for _ in range(slices)]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    return lines


@pytest.fixture
def corral(tmp_path: Path) -> RunCli:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _command(*args),
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    return run


def test_a_clean_sync_exits_0_with_progress_lines_and_a_summary(
    corral: RunCli, write_config: Callable[..., Path]
) -> None:
    config = write_config(items=7, per_slice=3)
    done = corral("sync", "synccount", "--full", "--config", config)
    assert done.returncode == 0, done.stderr
    # stderr is a pipe: one plain line per slice, no terminal control codes
    assert done.stderr.splitlines() == [
        "synccount: pull 3, 4 left: created 3",
        "synccount: pull 6, 1 left: created 6",
        "synccount: finished 7, 0 left: created 7",
    ]
    assert "\x1b" not in done.stdout
    assert "synccount: full sync" in done.stdout
    title, header, *rows = done.stdout.splitlines()[:3]
    assert title == "synccount: full sync"
    assert header.split() == [
        "DIRECTION", "CREATED", "UPDATED", "UNCHANGED", "CONFLICTS", "ERRORS", "DELETED"
    ]  # fmt: skip
    assert rows[0].split() == ["pull", "7", "0", "0", "0", "0", "0"]
    assert "took" in done.stdout and "in 3 calls" in done.stdout


def test_errors_and_conflicts_exit_1_and_json_reports_them(
    corral: RunCli, write_config: Callable[..., Path]
) -> None:
    config = write_config(items=5, fail_items=[1], conflict_items=[3])
    done = corral("sync", "synccount", "--json", "--config", config)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["clean"] is False
    assert report["mode"] == "incremental"
    assert report["counts"]["pull"] == {
        "created": 0, "updated": 0, "unchanged": 3, "conflicts": 1, "errors": 1, "deleted": 0,
    }  # fmt: skip
    assert report["errors"] == [
        {"direction": "pull", "key": "ITEM-1", "task_id": None, "reason": "refused by the remote"}
    ]
    assert report["open_conflicts"] == 1

    listed = corral("conflicts", "synccount", "list", "--json", "--config", config)
    assert listed.returncode == 0
    assert [c["id"] for c in json.loads(listed.stdout)] == ["c-3"]
    listed = corral("conflicts", "synccount", "list", "--config", config)
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "ITEM", "FIELD", "LOCAL", "REMOTE"]
    assert row.startswith("c-3  ITEM-3 / task ") and row.endswith('title  "mine"  "theirs"')
    shown = corral("conflicts", "synccount", "show", "c-3", "--config", config)
    assert shown.returncode == 0
    assert '  local  "mine"\n  remote "theirs"' in shown.stdout
    resolved = corral(
        "conflicts", "synccount", "resolve", "c-3", "--value", '"ours"', "--config", config
    )
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.startswith('resolved c-3: title = "ours"')
    missing = corral("conflicts", "synccount", "show", "c-3", "--config", config)
    assert missing.returncode == 1
    assert (
        missing.stderr == "corral: plugin 'synccount' returned not-found: no open conflict 'c-3'\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["conflicts", "synccount", "resolve", "c-1", "--value", "{oops"], "--value is not JSON"),
        (["conflicts", "synccount", "resolve", "c-1", "--value", "NaN"], "NaN is not a JSON value"),
        (["sync", "synccount", "--config", "missing.yaml"], "missing.yaml: file not found"),
    ],
)
def test_usage_and_config_errors_exit_2(
    corral: RunCli, write_config: Callable[..., Path], args: list[str], message: str
) -> None:
    config = write_config(items=1)
    if "--config" not in args:
        args = [*args, "--config", str(config)]
    done = corral(*args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"grant": ["config.read", "kv"], "config": {"items": -1}},
            "config: plugins.synccount.config.items: -1 is less than the minimum of 0",
        ),
        ({"grant": ["kv"], "config": {}}, 'requests permission "config.read"'),
    ],
)
def test_a_plugin_that_cannot_load_for_its_settings_exits_2(
    corral: RunCli,
    host_config: Callable[[str, dict[str, Any]], Path],
    settings: dict[str, Any],
    message: str,
) -> None:
    done = corral("sync", "synccount", "--config", host_config("synccount", settings))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_trapped_slice_exits_3(corral: RunCli, write_config: Callable[..., Path]) -> None:
    config = write_config(items=4, stall_at=1, limits={"execution_timeout": "1s"})
    done = corral("sync", "synccount", "--config", config)
    assert done.returncode == 3
    assert done.stderr.splitlines()[-1].startswith("corral: plugin 'synccount' trapped")


def test_a_killed_sync_resumes_where_it_stopped(
    tmp_path: Path, corral: RunCli, write_config: Callable[..., Path]
) -> None:
    config = write_config(items=12, per_slice=1, item_ms=100)
    lines = _kill_sync_after("synccount", config, slices=3, cwd=tmp_path)
    assert lines[-1].startswith("synccount: pull 3, 9 left")

    status = corral("call", "synccount", "status", "--config", config)
    running = json.loads(status.stdout)["running"]
    assert running["mode"] == "full" and 3 <= running["next"] < 12

    done = corral("sync", "synccount", "--json", "--config", config)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["run_id"] == running["run_id"]
    assert report["mode"] == "full"
    assert report["counts"]["pull"]["created"] == 12
    assert report["calls"] == 12 - running["next"]


# --- the real jira-sync plugin against the Jira emulator -----------------------------------


@pytest.fixture
def jira() -> Iterator[EmulatorHandle]:
    with running_jira(150) as handle:
        yield handle


@pytest.fixture
def jira_config(
    tmp_path: Path, jira: EmulatorHandle, host_config: Callable[[str, dict[str, Any]], Path]
) -> Callable[..., Path]:
    """corral.yaml running jira-sync against the emulator (pages of 5, slices of about 1 s)."""

    def write(**config: Any) -> Path:
        token = tmp_path / "token"
        settings = jira_sync_settings(jira, token, timeout="2s", page_size=5, **config)
        return host_config(PLUGIN, settings)

    return write


def test_jira_sync_conflict_round_trip(
    corral: RunCli, jira: EmulatorHandle, jira_config: Callable[..., Path]
) -> None:
    config = jira_config()
    first = corral("sync", PLUGIN, "--full", "--config", config)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[-1].startswith("jira-sync: finished 150")
    assert first.stdout.splitlines()[2].split()[:2] == ["pull", "150"]

    # The same title changed on both sides: jira-sync's default strategy is manual.
    with httpx.Client(base_url=f"{jira.url}/rest/api/3", auth=jira.basic_auth(1)) as rest:
        issue_id = rest.get("/issue/DEMO-4").json()["id"]
        rest.put("/issue/DEMO-4", json={"fields": {"summary": "Theirs"}}).raise_for_status()
        edited = corral("tasks", "edit", f"jira-{issue_id}", "--title", "Mine", "--config", config)
        assert edited.returncode == 0, edited.stderr

        second = corral("sync", PLUGIN, "--json", "--config", config)
        assert second.returncode == 1, second.stderr
        report = json.loads(second.stdout)
        assert (report["clean"], report["open_conflicts"], report["errors"]) == (False, 1, [])

        listed = corral("conflicts", PLUGIN, "list", "--json", "--config", config)
        [conflict] = json.loads(listed.stdout)
        assert (conflict["external_key"], conflict["field"]) == ("DEMO-4", "title")
        assert (conflict["local"], conflict["remote"]) == ("Mine", "Theirs")

        resolved = corral("conflicts", PLUGIN, "resolve", conflict["id"], "--take", "local",
                          "--config", config)  # fmt: skip
        assert resolved.returncode == 0, resolved.stderr
        assert rest.get("/issue/DEMO-4").json()["fields"]["summary"] == "Mine"

    third = corral("sync", PLUGIN, "--json", "--config", config)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["open_conflicts"] == 0


def test_jira_sync_refusing_its_config_exits_2(
    corral: RunCli, jira_config: Callable[..., Path]
) -> None:
    config = jira_config(field_mapping={"custom_fields.points": "No Such Field"})
    done = corral("sync", PLUGIN, "--config", config)
    assert done.returncode == 2
    assert "No Such Field" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_killed_jira_sync_resumes_without_duplicates(
    tmp_path: Path, corral: RunCli, jira_config: Callable[..., Path]
) -> None:
    config = jira_config()
    [line] = _kill_sync_after(PLUGIN, config, slices=1, cwd=tmp_path)
    assert re.match(r"jira-sync: pull \d+(, \d+ left)?: created \d+$", line)

    status = corral("call", PLUGIN, "status", "--config", config)
    running = json.loads(status.stdout)["running"]
    assert running is not None and running["mode"] == "full"

    done = corral("sync", PLUGIN, "--json", "--config", config)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["run_id"] == running["run_id"]
    assert report["counts"]["pull"]["created"] == 150
    tasks = corral("tasks", "list", "--json", "--config", config)
    assert len(json.loads(tasks.stdout)) == 150


def test_on_a_terminal_progress_is_a_bar(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    config = write_config(items=6, per_slice=2)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            _command("sync", "synccount", "--config", config),
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env=_env(),
            cwd=tmp_path,
        )
        os.close(follower)
        # Read while it runs, so a full terminal buffer never blocks it.
        shown = b""
        while chunk := _read_pty(leader):
            shown += chunk
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    text = shown.decode()
    assert "\x1b[" in text and "━" in text
    assert "6/6" in text and "unchanged 6" in text
    assert "synccount: pull" not in text  # not the plain lines


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end is closed and everything was read
        return b""


def test_ctrl_c_stops_between_slices_and_a_full_sync_finishes_that_run_first(
    tmp_path: Path, corral: RunCli, write_config: Callable[..., Path]
) -> None:
    config = write_config(items=8, per_slice=1, item_ms=100)
    process = _start_sync("synccount", "--config", config, cwd=tmp_path)
    assert process.stderr is not None
    first = process.stderr.readline()
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=30) == 130
    assert first.startswith("synccount: pull 1, 7 left")
    assert rest.endswith(
        "corral: sync of synccount interrupted between slices; "
        "run `corral sync synccount` again to resume\n"
    )

    done = corral("sync", "synccount", "--full", "--json", "--config", config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mode"] == "incremental"
    assert done.stderr.splitlines()[-1] == (
        "corral: finished the incremental run that was in progress; run again for the full sync"
    )
