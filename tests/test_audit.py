"""The audit trail: what a real plugin call leaves in audit.log, and `corral audit`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral import CorralError, PluginHost
from corral._audit import AuditLog, parse_since, read_audit
from corral.bundle import Bundle
from corral.cli import main

HostFactory = Callable[..., PluginHost]
SECRET = "audit-S3CRET-token"
TITLE = "title-VALUE-never-logged"
KV_VALUE = "kv-VALUE-never-logged"


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _audit_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    config = tmp_path / "corral.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    capsys.readouterr()
    assert main(["audit", "--config", str(config), *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_one_call_s_entries_share_its_call_id_and_hold_no_values(
    make_host: HostFactory,
    server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CORRAL_AUDIT_TEST_TOKEN", SECRET)
    settings = {
        "grant": ["network.http.outbound", "config.read", "task.read_write", "kv"],
        "http": {"allow_private_networks": ["127.0.0.0/8"]},
        "credentials": [
            {"hosts": [server], "scheme": "bearer", "secret": "env:CORRAL_AUDIT_TEST_TOKEN"}
        ],
    }
    host = make_host("hostapi", plugins={"hostapi": settings})
    steps = [
        ["tasks.put-many", {"tasks": [{"id": "audit-1", "title": TITLE}]}],
        ["tasks.put-link", {"task_id": "audit-1", "system": "jira", "external_key": "OPS-1"}],
        ["kv.set", {"key": "cursor", "value": KV_VALUE}],
        ["http", {"url": server + "/sync?token=query-VALUE"}],
    ]
    result = host.call("hostapi", "steps", {"steps": steps})
    assert "error" not in result, result
    host.call("hostapi", "kv.get", {"key": "cursor"})  # another call, another id
    host.close()

    log = tmp_path / "data" / "audit.log"
    entries = list(read_audit(log))
    steps_call = next(e for e in entries if e["event"] == "call" and e["command"] == "steps")
    call_id = steps_call["call_id"]
    assert steps_call["plugin"] == "hostapi" and steps_call["outcome"] == "ok"
    assert steps_call["duration_ms"] > 0
    of_call = {e["event"]: e for e in entries if e["call_id"] == call_id}
    assert set(of_call) == {"task.write", "link.write", "kv.write", "http", "call"}
    assert of_call["task.write"]["tasks"] == [["audit-1", 1]]
    assert of_call["link.write"]["external_key"] == "OPS-1"
    assert (of_call["kv.write"]["key"], of_call["kv.write"]["size"]) == ("cursor", len(KV_VALUE))
    assert of_call["http"]["status"] == 200
    assert of_call["http"]["url"].endswith("/sync?<redacted>")
    other = [e for e in entries if e["event"] == "call" and e["command"] == "kv.get"]
    assert len(other) == 1 and other[0]["call_id"] != call_id

    checksum = Bundle.open(tmp_path / "plugins" / "hostapi").manifest.security.checksum
    loaded = next(e for e in entries if e["event"] == "plugin.loaded")
    assert (loaded["plugin"], loaded["checksum"]) == ("hostapi", checksum)
    assert entries[-1]["event"] == "plugin.unloaded"

    text = log.read_text()
    for value in (SECRET, TITLE, KV_VALUE, "query-VALUE"):
        assert value not in text

    lines = _audit_cli(tmp_path, capsys, "--call", call_id, "--json")
    assert [json.loads(line)["event"] for line in lines] == [
        "task.write",
        "link.write",
        "kv.write",
        "http",
        "call",
    ]
    human = _audit_cli(tmp_path, capsys, "--plugin", "hostapi")
    assert len(human) == sum(1 for e in entries if e["plugin"] == "hostapi")
    assert any(call_id in line and "kv.write" in line for line in human)


def test_a_denied_import_and_a_failed_call_are_recorded(
    tmp_path: Path, plugin_dir: Callable[..., Path]
) -> None:
    plugins = plugin_dir("hostapi")
    manifest = plugins / "hostapi" / "manifest.yaml"
    requested = "permissions: [network.http.outbound, config.read, task.read_write, kv]"
    manifest.write_text(manifest.read_text().replace(requested, "permissions: []"))
    with PluginHost(plugin_dirs=[plugins], data_dir=tmp_path / "data") as host:
        host.load()
        answer = host.call("hostapi", "kv.set", {"key": "k", "value": "v"})
        assert answer["error"] == "permission-denied"
        with pytest.raises(CorralError):
            host.call("hostapi", "no-such-command")
    entries = list(read_audit(tmp_path / "data" / "audit.log"))
    denied = next(e for e in entries if e["event"] == "permission.denied")
    assert (denied["function"], denied["permission"]) == ("kv.set", "kv")
    kv_call = next(e for e in entries if e["event"] == "call" and e["command"] == "kv.set")
    assert kv_call["call_id"] == denied["call_id"]
    failed = next(e for e in entries if e.get("command") == "no-such-command")
    assert failed["outcome"] != "ok"


def test_load_failures_are_recorded_with_the_reason(
    tmp_path: Path, plugin_dir: Callable[..., Path]
) -> None:
    plugins = plugin_dir("hello")
    with PluginHost(plugin_dirs=[plugins], data_dir=tmp_path / "data") as host:
        host.load()  # hello requests config.read, not granted
        host.load()
    entries = list(read_audit(tmp_path / "data" / "audit.log"))
    assert [e["reload"] for e in entries if e["event"] == "host.load"] == [False, True]
    failed = [e for e in entries if e["event"] == "plugin.failed"]
    assert len(failed) == 2 and "config.read" in failed[0]["reason"]
    assert failed[0]["checksum"].startswith("sha256:")


def test_reading_spans_rotated_files_oldest_first(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_bytes=1000, backups=3)
    for i in range(40):
        log.record("kv.write", "p", key=f"k{i}", size=i)
    log.close()
    (tmp_path / "audit.log").open("a").write("{torn line\n")
    keys = [e["key"] for e in read_audit(tmp_path / "audit.log")]
    assert len(list(tmp_path.glob("audit.log.*"))) == 3
    assert keys == sorted(keys, key=lambda k: int(k[1:]))  # in order, oldest first
    assert keys[-1] == "k39" and len(keys) < 40  # the oldest file was dropped


def test_since_takes_a_time_ago_or_an_iso_time() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-11-23T10:00") == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a time ago"):
        parse_since("yesterday")


def test_audit_cli_filters_by_time_and_refuses_a_bad_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    old: dict[str, Any] = {"ts": "2020-01-01T00:00:00.000+00:00", "event": "call", "plugin": "a"}
    (tmp_path / "data" / "audit.log").write_text(json.dumps(old) + "\n")
    log = AuditLog(tmp_path / "data" / "audit.log")
    log.record("call", "b", command="x")
    log.close()
    assert len(_audit_cli(tmp_path, capsys)) == 2
    (line,) = _audit_cli(tmp_path, capsys, "--since", "1h", "--json")
    assert json.loads(line)["plugin"] == "b"
    config = tmp_path / "corral.yaml"
    assert main(["audit", "--config", str(config), "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err
