"""What the `corral` command prints: tables with header rows, and a quiet end in a pipe."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from corral._cli_output import print_table
from corral._exit import EXIT_BROKEN_PIPE
from corral.cli import main
from corral.serve._queue import EventQueue
from corral.tasks import SQLiteTaskStore
from test_cli import corral_cli


def test_print_table_aligns_under_a_header(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(
        ("NAME", "N", "NOTE"),
        [("a", 5, None), ("日本語", 120, "two\nlines"), ("bb", 7, "")],
        right={1},
    )
    assert capsys.readouterr().out.splitlines() == [
        "NAME      N  NOTE",
        "a         5  -",
        "日本語  120  two\\nlines",  # wide characters take two cells; a row stays one line
        "bb        7  -",
    ]


@pytest.fixture
def data_config(tmp_path: Path) -> Path:
    config = tmp_path / "corral.yaml"
    config.write_text(yaml.safe_dump({"data_dir": "data"}))
    return config


def _store_tasks(data_dir: Path, count: int) -> None:
    data_dir.mkdir(exist_ok=True)
    store = SQLiteTaskStore(data_dir / "tasks.db")
    store.put_many([{"title": f"task {i} " + "x" * 60} for i in range(count)], actor="host")
    store.close()


def test_output_piped_into_a_reader_that_stops_ends_quietly(
    tmp_path: Path, data_config: Path
) -> None:
    _store_tasks(tmp_path / "data", 3000)
    # ~300 KB of table: far more than a pipe holds, so the writer meets the closed end.
    reader = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "tasks", "list", "--config", str(data_config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline().split()[:2] == [b"ID", b"STATUS"]
    reader.stdout.close()  # as `head -1` does
    stderr = reader.stderr.read()
    assert reader.wait(timeout=60) == EXIT_BROKEN_PIPE == 141
    assert stderr == b""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for PIPESTATUS")
def test_a_shell_pipe_into_head(tmp_path: Path, data_config: Path) -> None:
    _store_tasks(tmp_path / "data", 3000)
    corral = f"{sys.executable} -m corral.cli tasks list --config {data_config}"
    done = subprocess.run(
        ["bash", "-c", f'{corral} | head -n 2; echo "corral exited $' + '{PIPESTATUS[0]}"'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.splitlines()[2:] == ["corral exited 141"]
    assert done.stderr == ""


def test_plugins_list_shows_each_bundles_dir(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    first = plugin_dir("hello", into="first")
    second = plugin_dir("hello", into="second")
    config = tmp_path / "corral.yaml"
    config.write_text(
        yaml.safe_dump({"plugin_dirs": ["first", "second"], "cache_dir": str(compiled_cache_dir)})
    )
    done = corral_cli("plugins", "list", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 1  # the clash fails both
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "VERSION", "DIR", "REASON"]
    assert [row.split()[:4] for row in rows] == [
        ["hello", "failed", "0.1.0", "first/hello"],
        ["hello", "failed", "0.1.0", "second/hello"],
    ]
    assert first.is_dir() and second.is_dir()


def test_events_list_is_a_table(
    tmp_path: Path, data_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = EventQueue.in_data_dir(tmp_path / "data")
    queue.enqueue("jira-sync", "d-1", "webhook", "jira:issue_updated", "{}")
    queue.enqueue("hello", "d-2", "webhook", "ping", "{}")
    queue.close()
    assert main(["events", "list", "--config", str(data_config)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["SEQ", "PLUGIN", "STATE", "ATTEMPTS"]
    assert [row.split()[:4] for row in rows] == [
        ["1", "jira-sync", "pending", "0"],
        ["2", "hello", "pending", "0"],
    ]


def test_without_a_config_the_new_data_dir_is_announced_once(
    tmp_path: Path, plugin_dir: Callable[..., Path]
) -> None:
    done = corral_cli("audit", cwd=tmp_path)  # reading creates nothing
    assert done.returncode == 2
    assert done.stderr == "corral: no data dir .corral, so no audit log; give the host's " \
        "--config or --data-dir\n"  # fmt: skip
    assert not (tmp_path / ".corral").exists()

    done = corral_cli("tasks", "create", "--title", "first", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        "corral: no corral.yaml here: keeping tasks, kv and the audit log in new data dir "
        ".corral (--config or --data-dir choose another)\n"
    )
    assert (tmp_path / ".corral" / "tasks.db").is_file()
    done = corral_cli("tasks", "list", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines()[1].endswith("first")

    # --data-dir names it: no announcement, and nothing in ./.corral.
    plugins = plugin_dir("misbehave")
    elsewhere = tmp_path / "elsewhere"
    done = corral_cli(
        "plugins", "list", "--plugins-dir", str(plugins), "--data-dir", str(elsewhere), "-q",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""
    assert (elsewhere / "audit.log").is_file()
    assert not (tmp_path / ".corral" / "audit.log").exists()
    assert "plugin.loaded" in corral_cli("audit", "--data-dir", str(elsewhere)).stdout


def test_plugins_inspect_shows_hosts_and_exported_functions(
    plugin_dir: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = plugin_dir("hello", "hostapi")
    assert main(["plugins", "inspect", str(plugins / "hello")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "allowed_hosts: none" in lines
    exports = lines[lines.index("exports:") + 1 :]
    assert "  - corral:plugin/handler@0.1.1: invoke, on-event" in exports
    assert not any("object at 0x" in line for line in lines)

    assert main(["plugins", "inspect", str(plugins / "hostapi")]) == 0
    lines = capsys.readouterr().out.splitlines()
    hosts = lines[lines.index("allowed_hosts:") + 1 :][:2]
    assert hosts == ["  - http://127.0.0.1:*", "  - http://localhost:*"]

    # Options that would change nothing are not offered.
    for argv in (["inspect", "x", "--plugins-dir", "d"], ["verify", "x", "--data-dir", "d"]):
        with pytest.raises(SystemExit) as exited:
            main(["plugins", *argv])
        assert exited.value.code == 2
