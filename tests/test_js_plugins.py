"""JavaScript plugins: examples/hello-js built with componentize-js (once per session, in
conftest, like the Python plugins) and run through the host; the build's own errors."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import test_host_capabilities as host_capabilities
from corral import BuildError, Bundle, PluginError, PluginHost
from corral._build_js import TOOLCHAIN_DIR_ENV, TOOLCHAIN_VERSION, _installed_toolchain
from corral.build import build_plugin, source_digest

ROOT = Path(__file__).resolve().parent.parent
HELLO_JS = ROOT / "examples" / "hello-js"
HostFactory = Callable[..., PluginHost]
LOOPBACK = host_capabilities.LOOPBACK
echo_servers = host_capabilities.echo_servers  # the loopback echo servers fixture, shared
GRANT = {"hello-js": {"grant": ["config.read"]}}


def test_the_component_imports_only_what_the_host_links(bundles: dict[str, Bundle]) -> None:
    bundle = bundles["hello-js"]
    assert bundle.manifest.plugin.name == "hello-js"
    # the build staged the SDK beside plugin.js, not into the author's directory
    assert not (HELLO_JS / "corral-sdk.js").exists()
    assert not (HELLO_JS / "plugin.wasm").exists()


def test_echo_round_trips_json(make_host: HostFactory) -> None:
    host = make_host("hello-js", plugins=GRANT)
    value = {"text": "héllo", "n": [1, 2.5, None, True], "nested": {"a": {}}}
    assert host.call("hello-js", "echo", value) == value
    assert host.call("hello-js", "echo", None) is None


def test_greet_reads_config_and_logs(
    make_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    host = make_host(
        "hello-js", plugins={"hello-js": {"grant": ["config.read"], "config": {"greeting": "Hej"}}}
    )
    with caplog.at_level(logging.INFO, logger="corral.plugin.hello-js"):
        assert host.call("hello-js", "greet", {"name": "Ada"}) == {"message": "Hej, Ada!"}
    assert any(
        "greeting" in r.getMessage() and "name=Ada" in r.getMessage() for r in caplog.records
    )
    assert host.call("hello-js", "config", None) == {"greeting": "Hej"}


def test_a_missing_config_key_is_a_not_found_the_plugin_handles(make_host: HostFactory) -> None:
    host = make_host("hello-js", plugins=GRANT)
    assert host.call("hello-js", "greet", {}) == {"message": "Hello, world!"}


def test_errors_thrown_by_the_plugin_are_error_values(make_host: HostFactory) -> None:
    host = make_host("hello-js", plugins=GRANT)
    with pytest.raises(PluginError) as thrown:
        host.call("hello-js", "greet", {"name": 42})
    assert (thrown.value.kind, thrown.value.message) == ("invalid-input", "name must be a string")
    with pytest.raises(PluginError) as unknown:
        host.call("hello-js", "nope", None)
    assert unknown.value.kind == "invalid-input"
    assert unknown.value.message == "unknown command 'nope' (known: config, echo, greet)"
    # error values, not traps: the plugin goes on answering
    assert host.call("hello-js", "echo", 1) == 1


def test_events_reach_the_handler(make_host: HostFactory, caplog: pytest.LogCaptureFixture) -> None:
    host = make_host("hello-js", plugins=GRANT)
    with caplog.at_level(logging.INFO, logger="corral.plugin.hello-js"):
        host.send_event("hello-js", "issue.updated", {"key": "OPS-1"}, id="e7")
    assert any("event" in r.getMessage() and "id=e7" in r.getMessage() for r in caplog.records)


def test_the_digest_covers_the_js_sdk_and_ignores_node_modules(tmp_path: Path) -> None:
    source = tmp_path / "hello-js"
    shutil.copytree(HELLO_JS, source, ignore=shutil.ignore_patterns("plugin.wasm"))
    before = source_digest(source)
    (source / "node_modules" / "left-pad").mkdir(parents=True)
    (source / "node_modules" / "left-pad" / "index.js").write_text("export default 1;\n")
    assert source_digest(source) == before
    (source / "plugin.js").write_text((source / "plugin.js").read_text() + "\n// edited\n")
    assert source_digest(source) != before


def _copy_of_hello(tmp_path: Path) -> Path:
    source = tmp_path / "hello-js"
    shutil.copytree(HELLO_JS, source, ignore=shutil.ignore_patterns("plugin.wasm"))
    return source


def _path_with_only(tmp_path: Path, **tools: str) -> str:
    """A PATH directory holding just the named tools (name -> target) and a Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in tools.items():
        (bin_dir / name).symlink_to(target)
    (bin_dir / "python3").symlink_to(sys.executable)
    return str(bin_dir)


def test_missing_node_is_one_line_naming_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _copy_of_hello(tmp_path)
    monkeypatch.setenv("PATH", _path_with_only(tmp_path))
    with pytest.raises(BuildError) as info:
        build_plugin(source, tmp_path / "out", use_cache=False)
    assert str(info.value) == (
        "building a JavaScript plugin needs Node.js 18 or later with npm (`node` is not on PATH)"
    )
    assert not (tmp_path / "out" / "plugin.wasm").exists()


def test_a_copy_of_the_sdk_in_the_plugin_is_refused(tmp_path: Path) -> None:
    source = _copy_of_hello(tmp_path)
    (source / "corral-sdk.js").write_text("export class Plugin {}\n")
    with pytest.raises(BuildError, match=r"has its own corral-sdk\.js; remove it \(the build"):
        build_plugin(source, tmp_path / "out")


def test_too_old_node_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _copy_of_hello(tmp_path)
    old_node = tmp_path / "old-node"
    old_node.write_text("#!/bin/sh\necho v16.20.2\n")
    old_node.chmod(0o755)
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, node=str(old_node)))
    with pytest.raises(
        BuildError, match=r"needs Node\.js 18 or later with npm \(found v16\.20\.2\)$"
    ):
        build_plugin(source, tmp_path / "out", use_cache=False)


def test_missing_npm_is_reported_when_the_toolchain_must_be_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = shutil.which("node")
    assert node is not None, "these tests need Node.js (CI has Node 20)"
    source = _copy_of_hello(tmp_path)
    monkeypatch.setenv(TOOLCHAIN_DIR_ENV, str(tmp_path / "toolchain"))
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, node=node))
    with pytest.raises(BuildError, match=r"with npm \(`npm` is not on PATH\)$"):
        build_plugin(source, tmp_path / "out", use_cache=False)
    assert not (tmp_path / "toolchain").exists() or not os.listdir(tmp_path / "toolchain")


def test_a_plugin_that_does_not_build_reports_componentize_js(
    tmp_path: Path, bundles: dict[str, Bundle]
) -> None:
    # (after `bundles`, so the toolchain is installed and this pays only for the failed build)
    source = _copy_of_hello(tmp_path)
    (source / "plugin.js").write_text('import { nope } from "./missing.js";\n')
    with pytest.raises(BuildError) as info:
        build_plugin(source, tmp_path / "out")
    message = str(info.value)
    assert message.startswith(f"{source}: componentize-js failed: ")
    assert "missing.js" in message
    assert "\n" not in message
    assert not (tmp_path / "out" / "plugin.wasm").exists()


SDK_GRANT = {
    "js-sdk": {
        "grant": ["network.http.outbound", "kv", "task.read", "task.write"],
        "http": LOOPBACK,
    }
}


def test_sdk_http_send_moves_bodies_through_handles(
    make_host: HostFactory, echo_servers: list[str]
) -> None:
    host = make_host("js-sdk", plugins=SDK_GRANT)
    body = "é" * 100_000  # 200,000 bytes: several 64 KiB chunks each way
    answer = host.call(
        "js-sdk",
        "http",
        {"method": "POST", "url": echo_servers[0] + "/api", "body": body, "headers": {"X-A": 1}},
    )
    assert answer["status"] == 200
    assert answer["contentType"] == "application/json"
    assert answer["json"]["body"] == body
    assert answer["json"]["headers"]["X-A"] == "1"
    assert answer["size"] > 200_000


def test_sdk_http_start_sends_in_the_background(
    make_host: HostFactory, echo_servers: list[str]
) -> None:
    host = make_host("js-sdk", plugins=SDK_GRANT)
    urls = [f"{echo_servers[0]}/page/{n}" for n in range(3)]
    answer = host.call("js-sdk", "http.started", {"urls": urls})
    assert answer == ["/page/2", "/page/1", "/page/0"]


def test_sdk_kv_and_error_values(make_host: HostFactory, caplog: pytest.LogCaptureFixture) -> None:
    host = make_host("js-sdk", plugins=SDK_GRANT)
    assert host.call("js-sdk", "kv.round-trip", {"key": "k", "value": "välue"}) == "välue"
    with pytest.raises(PluginError) as missing:
        host.call("js-sdk", "kv.get", {"key": "absent"})
    assert missing.value.kind == "not-found"
    with caplog.at_level(logging.INFO, logger="corral.plugin.js-sdk"):
        with pytest.raises(PluginError) as bug:
            host.call("js-sdk", "bug", {})
        host.call("js-sdk", "print", {"text": "printed by console.log"})
    assert bug.value.kind == "internal"
    assert bug.value.message.startswith("bug: TypeError: ")
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("bug: TypeError: ") and "plugin.js:" in line for line in lines)
    assert any("printed by console.log" in line for line in lines)


def test_sdk_kv_keeps_json_values(make_host: HostFactory) -> None:
    host = make_host("js-sdk", plugins=SDK_GRANT)

    def call(command: str, **args: Any) -> Any:
        return host.call("js-sdk", command, args)

    assert call("sdk.kv.get", key="cursor") is None
    assert call("sdk.kv.get", key="cursor", fallback={"page": 0}) == {"page": 0}
    cursor = {"updated": "2026-11-23T10:00:00Z", "page": 3, "done": ["a", "b"]}
    call("sdk.kv.set", key="cursor", value=cursor)
    assert call("sdk.kv.get", key="cursor") == cursor
    stored = host.kv_store.get("js-sdk", "cursor")
    assert stored == b'{"done":["a","b"],"page":3,"updated":"2026-11-23T10:00:00Z"}'  # keys sorted
    moved = {**cursor, "page": 4}
    assert call("sdk.kv.cas", key="cursor", expected={**cursor, "page": 2}, value=moved) is False
    reordered = {"page": 3, "done": ["a", "b"], "updated": "2026-11-23T10:00:00Z"}
    assert call("sdk.kv.cas", key="cursor", expected=reordered, value=moved) is True
    assert call("sdk.kv.get", key="cursor") == moved
    assert call("sdk.kv.cas", key="lease", expected=None, value=1) is True
    assert call("sdk.kv.cas", key="lease", expected=None, value=2) is False
    for i in range(5):
        call("sdk.kv.set", key=f"seen/{i}", value=[i])
    assert call("sdk.kv.keys", prefix="seen/", page=2) == [f"seen/{i}" for i in range(5)]
    assert call("sdk.kv.delete", key="seen/0") is True
    assert call("sdk.kv.delete", key="seen/0") is False


def test_sdk_tasks_pages_writes_and_reads_the_feed(make_host: HostFactory) -> None:
    host = make_host("js-sdk", plugins=SDK_GRANT)

    def call(command: str, **args: Any) -> Any:
        return host.call("js-sdk", command, args)

    mine = call("sdk.tasks.put-many", items=[{"title": f"t{i}", "labels": ["x"]} for i in range(5)])
    assert [task["title"] for task in mine] == [f"t{i}" for i in range(5)]
    assert call("sdk.tasks.get", id=mine[0]["id"])["labels"] == ["x"]
    theirs = host.task_store.put_many([{"title": "by the host"}], actor="host")
    first = call("sdk.tasks.query", filter={"label": "x"}, limit=2)
    ids = call("sdk.tasks.all", filter={"label": "x"}, limit=2)  # three pages, in query order
    assert first["ids"] == ids[:2] and first["nextCursor"]
    assert sorted(ids) == sorted(t["id"] for t in mine)
    feed = call("sdk.tasks.changes", limit=100)
    assert [c["task_id"] for c in feed["changes"]] == [t["id"] for t in mine] + [theirs[0].id]
    assert [c["task"] is None for c in feed["changes"]] == [True] * 5 + [False]  # own: bare
    again = call("sdk.tasks.changes", cursor=feed["cursor"], limit=100)
    assert again == {"changes": [], "cursor": feed["cursor"]}  # nothing new: the same cursor
    written = call(
        "sdk.tasks.started",
        batches=[[{"id": mine[0]["id"], "status": "done"}], [{"title": "second batch"}]],
    )
    assert written[0][0]["status"] == "done" and written[1][0]["title"] == "second batch"
    with pytest.raises(PluginError) as stale:
        call("sdk.tasks.started", batches=[[{"id": mine[1]["id"], "expected_version": 99}]])
    assert stale.value.kind == "conflict"
    with pytest.raises(PluginError) as missing:
        call("sdk.tasks.get", id="absent")
    assert missing.value.kind == "not-found"
    snapshot = {"key": "T-42", "base": {"title": "t0"}}
    link = {"taskId": mine[0]["id"], "system": "tracker", "externalKey": "42", "snapshot": snapshot}
    answer = call("sdk.tasks.links", taskId=mine[0]["id"], snapshot=snapshot)
    assert answer == {"byKey": link, "byTask": [link], "gone": None}


def _fake_npm(tmp_path: Path, script: str) -> Path:
    """An `npm` stand-in (a real subprocess) so installs are tested without the registry."""
    npm = tmp_path / "fake-npm"
    npm.write_text(f"#!{sys.executable}\nimport pathlib, sys, time\n{script}")
    npm.chmod(0o755)
    return npm


def test_concurrent_builds_install_the_toolchain_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    cli = Path("node_modules/@bytecodealliance/componentize-js/src/cli.js")
    npm = _fake_npm(
        tmp_path,
        f"with open({str(calls)!r}, 'a') as f: f.write('run\\n')\n"
        "time.sleep(0.5)\n"
        f"pathlib.Path({str(cli.parent)!r}).mkdir(parents=True)\n"
        f"pathlib.Path({str(cli)!r}).write_text('')\n",
    )
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, npm=str(npm)))
    monkeypatch.setenv(TOOLCHAIN_DIR_ENV, str(tmp_path / "toolchain"))
    with ThreadPoolExecutor(max_workers=3) as pool:
        installed = set(pool.map(lambda _: _installed_toolchain(60), range(3)))
    assert installed == {tmp_path / "toolchain" / TOOLCHAIN_VERSION}
    assert calls.read_text() == "run\n"
    assert (tmp_path / "toolchain" / TOOLCHAIN_VERSION / cli).is_file()
    leftovers = [p.name for p in (tmp_path / "toolchain").iterdir() if p.is_dir()]
    assert leftovers == [TOOLCHAIN_VERSION]


def test_a_failed_install_is_one_line_and_leaves_nothing_half_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm = _fake_npm(
        tmp_path,
        "pathlib.Path('node_modules/partial').mkdir(parents=True)\n"
        "sys.exit('npm error code E404\\nnpm error 404 Not Found')\n",
    )
    monkeypatch.setenv("PATH", _path_with_only(tmp_path, npm=str(npm)))
    monkeypatch.setenv(TOOLCHAIN_DIR_ENV, str(tmp_path / "toolchain"))
    with pytest.raises(BuildError) as info:
        _installed_toolchain(60)
    assert str(info.value) == (
        f"installing @bytecodealliance/componentize-js@{TOOLCHAIN_VERSION} with npm failed: "
        "npm error code E404"
    )
    assert [p for p in (tmp_path / "toolchain").iterdir() if p.is_dir()] == []
