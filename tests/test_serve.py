"""`corral serve`: a real server on loopback, real watchdog events in temporary plugin dirs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import copy_as
from corral import PluginHost
from corral.bundle import Bundle
from corral.config import load_host_config
from corral.serve import ServeApp, build_server

ROOT = Path(__file__).resolve().parent.parent

TIMEOUT = 20.0


def wait_until(condition: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.02)


def write_config(path: Path, **extra: Any) -> None:
    """corral.yaml with hello (config.read granted) and misbehave (2 s timeout)."""
    config: dict[str, Any] = {
        "plugin_dirs": ["plugins"],
        "data_dir": "data",
        "plugins": {
            "hello": {"grant": ["config.read"], "config": {"greeting": "Howdy"}},
            "misbehave": {"limits": {"execution_timeout": "2s"}},
        },
        "serve": {"reload_debounce": "100ms", "grace_period": "10s"},
    }
    config.update(extra)
    path.write_text(yaml.safe_dump(config))


class Server:
    """A `ServeApp` under uvicorn in a thread, and a client for it."""

    def __init__(self, config_path: Path, token: Any = None) -> None:
        self.host = PluginHost(config=load_host_config(config_path))
        self.app = ServeApp(self.host, config_path=config_path, token=token)
        self.uvicorn = build_server(self.app, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.uvicorn.started)
        port = self.uvicorn.servers[0].sockets[0].getsockname()[1]
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT)
        wait_until(self.app.reloader.first_load_done.is_set)

    def plugin(self, name: str) -> dict[str, Any] | None:
        listed = self.client.get("/plugins").json()["plugins"]
        return next((p for p in listed if p["name"] == name), None)

    def call(self, plugin: str, command: str, input: Any = None) -> httpx.Response:
        return self.client.post(f"/plugins/{plugin}/call/{command}", json=input)

    def close(self) -> None:
        self.client.close()
        self.uvicorn.should_exit = True
        self.thread.join(TIMEOUT)
        self.host.close()


@pytest.fixture
def layout(
    tmp_path: Path, bundles: dict[str, Bundle], compiled_cache_dir: Path
) -> Callable[..., Path]:
    """corral.yaml and a plugin dir with copies of the named bundles; returns the config path."""

    def make(*names: str, **extra: Any) -> Path:
        (tmp_path / "plugins").mkdir()
        for name in names:
            shutil.copytree(bundles[name].directory, tmp_path / "plugins" / name)
        extra.setdefault("cache_dir", str(compiled_cache_dir))
        write_config(tmp_path / "corral.yaml", **extra)
        return tmp_path / "corral.yaml"

    return make


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(config_path: Path, **kwargs: Any) -> Server:
        server = Server(config_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def in_background(function: Callable[[], Any]) -> Future[Any]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(function)
    pool.shutdown(wait=False)
    return future


def set_version(bundle_dir: Path, version: str) -> None:
    """Rewrite the manifest with another version, as an editor would (temp file, rename)."""
    manifest = bundle_dir / "manifest.yaml"
    text = manifest.read_text()
    current = yaml.safe_load(text)["plugin"]["version"]
    temp = bundle_dir / ".manifest.yaml.tmp"
    temp.write_text(text.replace(f"version: {current}", f"version: {version}"))
    os.replace(temp, manifest)


# -- endpoints --------------------------------------------------------------------------------


def test_endpoints_answer_and_map_errors_like_the_cli(
    layout: Callable[..., Path], serve: Callable[..., Server]
) -> None:
    server = serve(layout("hello", "misbehave"))
    client = server.client
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True}
    hello = server.plugin("hello")
    assert hello is not None
    assert (hello["state"], hello["version"], hello["last_error"]) == ("loaded", "0.1.0", "")
    assert hello["loaded_at"] > time.time() - 60

    assert server.call("hello", "echo", {"msg": "hi"}).json() == {"msg": "hi"}
    assert server.call("hello", "greet", {"name": "Ada"}).status_code == 200

    def error(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["kind"]

    assert error(server.call("hello", "nope", {})) == (422, "invalid-input")
    # input the manifest's declaration refuses: the same kind, and the field named
    refused = server.call("hello", "repeat", {"text": 1})
    assert error(refused) == (422, "invalid-input")
    assert refused.json()["error"]["message"].endswith(
        "repeat: input.text: 1 is not of type 'string'"
    )
    assert (
        hello["commands"]["repeat"]["description"] == "Say `text` `times` times (twice by default)."
    )
    assert error(server.call("ghost", "echo")) == (404, "plugin-not-found")
    bad_json = client.post("/plugins/hello/call/echo", content=b"{not json")
    assert error(bad_json) == (400, "bad-request")
    crash = server.call("misbehave", "crash")
    assert error(crash) == (500, "trap")
    assert crash.json()["error"]["message"].startswith("plugin 'misbehave' trapped")
    assert error(server.call("misbehave", "loop")) == (504, "timeout")

    metrics = client.get("/metrics").text
    assert 'corral_plugin_calls_total{entry="invoke",outcome="ok",plugin="hello"} 2.0' in metrics
    assert 'corral_plugin_errors_total{kind="invalid-input",plugin="hello"} 2.0' in metrics
    assert 'corral_plugin_traps_total{plugin="misbehave",trap="timeout"} 1.0' in metrics
    assert 'corral_host_function_calls_total{function="config.get",plugin="hello"}' in metrics
    assert "corral_plugin_call_duration_seconds_bucket" in metrics
    assert "ghost" not in metrics  # unknown names never become labels


def test_metrics_count_http_egress_by_decision(
    layout: Callable[..., Path], serve: Callable[..., Server]
) -> None:
    grants = ["network.http.outbound", "config.read", "task.read_write", "kv"]
    hostapi = {"grant": grants, "http": {"allow_private_networks": ["127.0.0.0/8"]}}
    config = layout("hostapi")
    data = yaml.safe_load(config.read_text())
    data["plugins"]["hostapi"] = hostapi
    config.write_text(yaml.safe_dump(data))
    server = serve(config)
    own = str(server.client.base_url).rstrip("/") + "/healthz"
    # hostapi answers {"ok": ...} or {"error": kind, ...}
    assert server.call("hostapi", "http", {"url": own}).json()["ok"]["status"] == 200
    denied = server.call("hostapi", "http", {"url": "https://example.com/"})  # off the allowlist
    assert denied.json()["error"] == "permission-denied"
    metrics = server.client.get("/metrics").text
    assert 'corral_http_egress_requests_total{decision="allow",plugin="hostapi"} 1.0' in metrics
    assert 'corral_http_egress_requests_total{decision="deny",plugin="hostapi"} 1.0' in metrics
    assert 'corral_host_function_calls_total{function="http.send",plugin="hostapi"} 2.0' in metrics


def test_management_endpoints_need_the_token_when_one_is_set(
    layout: Callable[..., Path], serve: Callable[..., Server]
) -> None:
    from corral.capabilities.http._secrets import Secret

    server = serve(layout("hello"), token=Secret("s3cret"))
    assert server.client.get("/healthz").status_code == 200
    refused = server.client.get("/plugins")
    assert refused.status_code == 401
    assert refused.json()["error"]["kind"] == "unauthorized"
    wrong = server.client.get("/plugins", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    good = server.client.get("/plugins", headers={"Authorization": "Bearer s3cret"})
    assert good.status_code == 200


def serve_command(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", "serve", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=60,
    )


def test_serve_refuses_to_start_on_a_bad_setup(tmp_path: Path) -> None:
    write_config(tmp_path / "corral.yaml")
    missing = serve_command(tmp_path / "corral.yaml")
    assert missing.returncode == 2
    assert "plugins is not a directory" in missing.stderr

    (tmp_path / "plugins").mkdir()
    beyond_loopback = serve_command(tmp_path / "corral.yaml", "--host", "0.0.0.0")
    assert beyond_loopback.returncode == 2
    assert "serve.token" in beyond_loopback.stderr


# -- hot reload -------------------------------------------------------------------------------


def test_a_dropped_bundle_loads_and_a_removed_one_unloads(
    layout: Callable[..., Path], serve: Callable[..., Server], bundles: dict[str, Bundle]
) -> None:
    config = layout("misbehave")
    server = serve(config)
    assert server.plugin("hello") is None
    shutil.copytree(bundles["hello"].directory, config.parent / "plugins" / "hello")
    wait_until(lambda: (server.plugin("hello") or {}).get("state") == "loaded")
    assert server.call("hello", "echo", {"n": 1}).json() == {"n": 1}

    shutil.rmtree(config.parent / "plugins" / "hello")
    wait_until(lambda: server.plugin("hello") is None)
    assert server.call("hello", "echo").status_code == 404
    assert server.call("misbehave", "count", {"n": 10}).json() == 45


def test_a_changed_bundle_is_swapped_while_a_call_in_flight_finishes_on_the_old_one(
    layout: Callable[..., Path], serve: Callable[..., Server]
) -> None:
    config = layout("misbehave")
    server = serve(config)
    slow = in_background(lambda: server.call("misbehave", "spin", {"seconds": 1.5}))
    time.sleep(0.1)  # the call has started
    set_version(config.parent / "plugins" / "misbehave", "0.2.0")
    wait_until(lambda: server.plugin("misbehave")["version"] == "0.2.0", timeout=TIMEOUT)
    assert not slow.done(), "the swap waited for the call in flight"
    assert server.call("misbehave", "count", {"n": 4}).json() == 6  # served by 0.2.0
    response = slow.result(TIMEOUT)
    assert response.status_code == 200, response.text
    assert server.plugin("misbehave")["state"] == "loaded"


def test_a_failing_update_keeps_the_old_version_serving(
    layout: Callable[..., Path], serve: Callable[..., Server]
) -> None:
    config = layout("hello")
    server = serve(config)
    bundle = config.parent / "plugins" / "hello"
    good_wasm = (bundle / "plugin.wasm").read_bytes()

    (bundle / "plugin.wasm").write_bytes(good_wasm[:1000])  # corrupt: checksum mismatch
    broken = wait_until(lambda: (server.plugin("hello") or {}).get("last_error"))
    assert "checksum mismatch" in broken
    assert server.plugin("hello")["state"] == "loaded"
    assert server.call("hello", "echo", "still here").json() == "still here"

    (bundle / "plugin.wasm").write_bytes(good_wasm)
    wait_until(lambda: server.plugin("hello")["last_error"] == "")

    # A permission the operator did not grant: refused, the old version keeps serving.
    manifest = bundle / "manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace("permissions: [config.read]", "permissions: [config.read, kv]")
    )
    refused = wait_until(lambda: server.plugin("hello")["last_error"])
    assert '"kv"' in refused and "plugins.hello.grant" in refused
    assert server.call("hello", "echo", 1).json() == 1


def test_half_copied_bundles_never_load_half_way(
    layout: Callable[..., Path], serve: Callable[..., Server], bundles: dict[str, Bundle]
) -> None:
    config = layout("misbehave")
    server = serve(config)
    source = bundles["hello"].directory
    wasm = (source / "plugin.wasm").read_bytes()
    target = config.parent / "plugins" / "hello"
    target.mkdir()
    states: list[str] = []

    def state() -> str:
        entry = server.plugin("hello")
        states.append(entry["state"] if entry else "absent")
        return states[-1]

    shutil.copy(source / "manifest.yaml", target / "manifest.yaml")  # the manifest first
    wait_until(lambda: state() == "failed")
    (target / "plugin.wasm").write_bytes(wasm[: len(wasm) // 2])  # then half the component
    time.sleep(0.5)
    assert state() == "failed"
    assert "checksum mismatch" in (server.plugin("hello") or {})["reason"]
    # rsync's way: the whole file under a temporary name, then renamed into place
    (target / ".plugin.wasm.Xa81k").write_bytes(wasm)
    os.replace(target / ".plugin.wasm.Xa81k", target / "plugin.wasm")
    wait_until(lambda: state() == "loaded")
    assert set(states) <= {"absent", "failed", "loaded"}
    assert server.call("hello", "echo", [1]).json() == [1]


def test_a_bundle_renamed_into_a_plugin_dir_loads(
    layout: Callable[..., Path], serve: Callable[..., Server], bundles: dict[str, Bundle]
) -> None:
    config = layout("misbehave")
    server = serve(config)
    staging = config.parent / "staging-hello"
    shutil.copytree(bundles["hello"].directory, staging)
    os.rename(staging, config.parent / "plugins" / "hello")
    wait_until(lambda: (server.plugin("hello") or {}).get("state") == "loaded")
    assert server.call("hello", "echo", "x").json() == "x"


def test_config_edits_reload_what_they_touch_and_bad_edits_keep_the_running_config(
    layout: Callable[..., Path], serve: Callable[..., Server]
) -> None:
    config = layout("hello", "misbehave")
    server = serve(config)
    misbehave_loaded_at = server.plugin("misbehave")["loaded_at"]
    text = config.read_text()

    config.write_text(text + "\nplugins: [this is: not valid\n")
    error = wait_until(lambda: server.client.get("/plugins").json()["config"]["error"])
    assert str(config) in error
    assert server.call("hello", "greet", {"name": "Ada"}).status_code == 200

    data = yaml.safe_load(text)
    data["plugins"]["hello"]["enabled"] = False
    config.write_text(yaml.safe_dump(data))
    wait_until(lambda: server.plugin("hello")["state"] == "disabled")
    assert server.client.get("/plugins").json()["config"]["error"] is None
    unavailable = server.call("hello", "echo")
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["kind"] == "plugin-unavailable"
    # untouched plugins were not reloaded
    assert server.plugin("misbehave")["loaded_at"] == misbehave_loaded_at

    data["plugins"]["hello"]["enabled"] = True
    data["plugins"]["hello"]["config"] = {"greeting": "Ahoy"}
    config.write_text(yaml.safe_dump(data))
    wait_until(lambda: server.plugin("hello")["state"] == "loaded")
    assert "Ahoy" in str(server.call("hello", "greet", {"name": "Ada"}).json())


@pytest.mark.slow
def test_a_bundle_being_compiled_shows_compiling_while_others_serve(
    layout: Callable[..., Path],
    serve: Callable[..., Server],
    bundles: dict[str, Bundle],
    compiled_cache_dir: Path,
    tmp_path: Path,
) -> None:
    """hello is not in this server's cache, misbehave is: misbehave answers during the compile."""
    cache = tmp_path / "cache"
    shutil.copytree(compiled_cache_dir, cache)
    config = layout("misbehave", cache_dir=str(cache))
    with PluginHost(plugin_dirs=[], cache_dir=cache, data_dir=tmp_path / "probe") as probe:
        unmetered = probe._registry._caches[False]  # hello has no fuel budget
        artifact, meta = unmetered._paths(bundles["hello"].wasm_sha256)
    artifact.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    server = serve(config)

    shutil.copytree(bundles["hello"].directory, config.parent / "plugins" / "hello")
    wait_until(lambda: (server.plugin("hello") or {}).get("state") == "compiling")
    assert server.client.get("/readyz").status_code == 503
    assert server.call("misbehave", "count", {"n": 3}).json() == 3
    assert server.call("hello", "echo").json()["error"]["kind"] == "plugin-unavailable"
    # Other bundles keep being reloaded during the compile (tens of seconds).
    copy_as(config.parent / "plugins", "misbehave", "misbehave-2")
    wait_until(lambda: (server.plugin("misbehave-2") or {}).get("state") == "loaded")
    assert server.plugin("hello")["state"] == "compiling"
    wait_until(lambda: server.plugin("hello")["state"] == "loaded", timeout=180)
    assert server.client.get("/readyz").status_code == 200


# -- stopping ---------------------------------------------------------------------------------


def test_sigterm_lets_the_call_in_flight_finish_then_exits_0(
    layout: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    config = layout("misbehave")
    data = yaml.safe_load(config.read_text())
    data["serve"]["port"] = _free_port()
    config.write_text(yaml.safe_dump(data))
    process = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "serve", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{data['serve']['port']}", timeout=30)

        def ready() -> bool:
            try:
                return client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=60)
        slow = in_background(
            lambda: client.post("/plugins/misbehave/call/spin", json={"seconds": 0.9})
        )
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        response = slow.result(30)
        assert response.status_code == 200, response.text
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    assert "SIGTERM: draining" in output
    assert "stopped" in output


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
