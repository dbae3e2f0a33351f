"""`corral run`: one call from a plugin's source or bundle, and the report of what it used.

Real components (built from source once per session), real Wasmtime, real HTTP on loopback.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from conftest import PLUGIN_SOURCES
from corral import PluginHost
from corral._observe import watch_call
from corral.bundle import Bundle
from corral.cli import main
from corral.run import CallRecorder
from corral.run._memory import linear_memories

HOSTAPI_GRANTS = ["network.http.outbound", "config.read", "task.read_write", "kv"]
LOOPBACK = json.dumps({"http": {"allow_private_networks": ["127.0.0.0/8"]}})
BODY = b"hello from loopback"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    return code, json.loads(out)


def grants(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--grant", name)]


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_run_from_source_prints_the_result_then_the_report(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    source = str(PLUGIN_SOURCES["hello"])
    argv = [source, "greet", "--input", '{"name": "Ann"}', "--grant", "config.read"]
    code, out, err = run(capsys, *argv, "--config", '{"greeting": "Hi"}')
    assert (code, err) == (0, "")
    result, _, report = out.partition("}\n")
    assert json.loads(result + "}") == {"message": "Hi, Ann!"}
    assert report.startswith("hello greet: ok\n")
    assert "% of 5 s" in report  # the manifest's execution_timeout
    assert "% of 64 MiB" in report  # its memory_limit
    assert "config.get" in report and "log.log" in report
    assert "[info] greeting name=Ann" in report
    assert "build up to date (checked in" in report  # the session's build, found by hash


def test_json_has_the_result_and_every_figure(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    bundle = str(bundles["hello"].directory)
    code, doc = run_json(capsys, bundle, "greet", "--grant", "config.read")
    assert code == 0
    assert doc["result"] == {"message": "Hello, world!"} and doc["error"] is None
    report = doc["report"]
    assert report["build_s"] is None  # a bundle is run as it is
    assert 0 < report["wall_s"] < report["timeout_s"] == 5
    # Fuel is metered only with a budget (metering slows the guest down).
    assert report["fuel_consumed"] is None and report["fuel_limit"] is None
    assert 0 < max(report["linear_memory_bytes"]) <= report["memory_limit_bytes"] == 64 << 20
    calls = {c["function"]: c["calls"] for c in report["host_calls"]}
    assert calls == {"config.get": 1, "log.log": 1}
    assert report["output"] == [{"source": "info", "text": "greeting name=world"}]
    assert report["http_requests"] == [] and report["permissions_denied"] == {}
    assert (report["log_burst"], report["log_lines_per_second"]) == (200, 50)
    assert not Path(report["data_dir"]).exists()  # thrown away


def test_a_grant_the_manifest_requests_is_needed_to_load(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    code, out, err = run(capsys, str(bundles["hello"].directory), "greet")
    assert (code, out) == (2, "")
    assert "--grant config.read" in err


def test_an_error_value_exits_1_with_the_report(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    code, out, err = run(capsys, str(bundles["hello"].directory), "nope", *grants("config.read"))
    assert code == 1
    assert out.startswith("hello nope: error: plugin 'hello' returned invalid-input")
    assert "wall time" in out
    assert err.startswith("corral: plugin 'hello' returned invalid-input")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--input", "{", "--input is not JSON"),
        ("--config", "[1]", "--config must be a JSON object"),
        ("--settings", '{"grant": "kv"}', "--settings: grant"),
        ("--settings", '{"nope": 1}', "nope: unknown key"),
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
    bundles: dict[str, Bundle],
    option: str,
    value: str,
    message: str,
) -> None:
    code, out, err = run(capsys, str(bundles["hello"].directory), "greet", option, value)
    assert (code, out) == (2, "")
    assert message in err


def test_a_permission_denied_in_the_call_shows_the_fix(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle], tmp_path: Path
) -> None:
    # hostapi with a manifest that no longer requests kv: its kv calls are refused
    bundle = shutil.copytree(bundles["hostapi"].directory, tmp_path / "hostapi")
    manifest = bundle / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace(", kv]", "]"))
    argv = [str(bundle), "kv.get", "--input", '{"key": "k"}', *grants(*HOSTAPI_GRANTS[:3])]
    code, out, _ = run(capsys, *argv)
    assert code == 0  # the plugin answered, with the error it got
    assert '"error": "permission-denied"' in out
    assert (
        "permission denied: kv.get needs kv: add kv to security.permissions in manifest.yaml, "
        "and run again with --grant kv"
    ) in out


def test_http_requests_are_listed_with_status_and_bytes(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle], server: str, tmp_path: Path
) -> None:
    steps = [["http", {"url": server + "/a?token=x"}], ["http", {"url": "https://example.com/"}]]
    argv = [str(bundles["hostapi"].directory), "steps", "--input", json.dumps({"steps": steps})]
    argv += [*grants(*HOSTAPI_GRANTS), "--settings", LOOPBACK, "--data-dir", str(tmp_path)]
    code, doc = run_json(capsys, *argv)
    assert code == 0
    sent, refused = doc["report"]["http_requests"]
    assert (sent["method"], sent["url"]) == ("GET", server + "/a?<redacted>")
    assert (sent["decision"], sent["status"], sent["bytes_in"]) == ("allow", 200, len(BODY))
    # refused by the allowlist before any connection
    assert (refused["decision"], refused["status"]) == ("deny", None)
    assert "not in the allowed hosts" in refused["reason"]
    calls = {c["function"]: c for c in doc["report"]["host_calls"]}
    assert calls["http.send"]["calls"] == 2
    assert calls["http.send"]["errors"] == {"permission-denied": 1}
    assert (tmp_path / "audit.log").is_file()  # --data-dir keeps the data
    assert doc["report"]["data_dir_kept"] is True


def test_a_memory_trap_still_reports_how_far_it_got(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    bundle = str(bundles["misbehave"].directory)
    code, out, err = run(capsys, bundle, "grow")
    assert code == 3
    assert "trapped" in err
    assert out.startswith("misbehave grow: hit its memory_limit:")
    code, doc = run_json(capsys, bundle, "grow")
    assert code == 3 and doc["result"] is None
    assert doc["error"]["limit_hit"] == "memory_limit"
    report = doc["report"]
    # it got to within a chunk (1 MiB) of its 48 MB limit, and no further
    assert report["memory_limit_bytes"] - (2 << 20) < max(report["linear_memory_bytes"])
    assert max(report["linear_memory_bytes"]) <= report["memory_limit_bytes"]
    assert any(line["source"] == "stderr" for line in report["output"])


def test_a_fuel_budget_is_reported_used_up(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    settings = json.dumps({"limits": {"fuel": 2_000_000}})
    argv = [str(bundles["misbehave"].directory), "count", "--input", '{"n": 100000000}']
    code, doc = run_json(capsys, *argv, "--settings", settings)
    assert code == 3
    assert doc["error"]["limit_hit"] == "fuel"
    assert doc["report"]["fuel_consumed"] == doc["report"]["fuel_limit"] == 2_000_000


def test_a_fuel_budget_meters_what_a_call_burns(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    settings = json.dumps({"limits": {"fuel": 10**12}})
    burned = []
    for n in (1_000, 100_000):
        argv = [str(bundles["misbehave"].directory), "count", "--input", json.dumps({"n": n})]
        code, doc = run_json(capsys, *argv, "--settings", settings)
        assert code == 0 and doc["result"] == n * (n - 1) // 2
        burned.append(doc["report"]["fuel_consumed"])
    assert 0 < burned[0] < burned[1] < 10**12


def test_a_timeout_is_reported_against_the_execution_timeout(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    code, out, _ = run(capsys, str(bundles["misbehave"].directory), "loop")
    assert code == 3
    assert out.startswith("misbehave loop: hit its execution_timeout:")
    wall = out.splitlines()[1].split()
    assert wall[0:2] == ["wall", "time"] and wall[-3:] == ["of", "2", "s"]
    assert int(wall[-4].rstrip("%")) >= 100


def test_guest_output_is_shown_against_its_limit(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Bundle]
) -> None:
    argv = [str(bundles["misbehave"].directory), "spew", "--input", '{"lines": 3}']
    code, doc = run_json(capsys, *argv)
    assert code == 0
    report = doc["report"]
    assert [line["source"] for line in report["output"]] == ["stdout"] * 3
    assert report["output_bytes"] == {"stdout": 3 * 1001, "stderr": 0}
    assert report["output_limit_bytes"] == 64 << 10


def test_a_watcher_sees_only_the_calls_of_its_own_context(
    make_host: Any, bundles: dict[str, Bundle]
) -> None:
    host: PluginHost = make_host(
        "hello",
        "hostapi",
        plugins={"hello": {"grant": ["config.read"]}, "hostapi": {"grant": HOSTAPI_GRANTS}},
    )
    stop = threading.Event()

    def other_calls() -> None:
        while not stop.is_set():
            host.call("hostapi", "kv.set", {"key": "k", "value": "v"})

    other = threading.Thread(target=other_calls)
    other.start()
    recorder = CallRecorder()
    try:
        with watch_call(recorder):
            for _ in range(20):
                host.call("hello", "greet", {})
    finally:
        stop.set()
        other.join()
    functions = [call.function for call in recorder.host_calls]
    assert sorted(set(functions)) == ["config.get", "log.log"]
    assert len(functions) == 40
    # and once the block ends, nothing more reaches it
    host.call("hello", "greet", {})
    assert len(recorder.host_calls) == 40


def test_linear_memories_are_read_at_their_exact_size() -> None:
    before = linear_memories()
    assert before is not None  # Linux
    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, '(module (memory (export "m") 3))')
    memory = wasmtime.Instance(store, module, []).exports(store)["m"]
    assert isinstance(memory, wasmtime.Memory)
    found = {a: n for a, n in (linear_memories() or {}).items() if a not in before}
    assert list(found.values()) == [3 * 65536]
    memory.grow(store, 5)
    assert (linear_memories() or {})[next(iter(found))] == 8 * 65536
