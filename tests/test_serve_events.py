"""`corral serve`'s webhooks, event delivery, schedules and circuit breaker, end to end: a real
server on loopback, real plugins (hostapi records what it was given in its kv store, which the
tests read from the SQLite file), real SQLite queue, and a real process killed with SIGKILL."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from corral import PluginHost
from corral.config import ScheduleEntry, load_host_config
from corral.serve import ServeApp, build_server
from corral.serve._queue import EventQueue

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests"
TOKEN = "t0ken-for-tests"
HOSTAPI_GRANTS = ["network.http.outbound", "config.read", "task.read_write", "kv"]


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_TEST_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CORRAL_TEST_WEBHOOK_TOKEN", TOKEN)


@pytest.fixture
def configure(tmp_path: Path, compiled_cache_dir: Path) -> Callable[..., Path]:
    """Write corral.yaml over `plugins_dir` with these plugin settings and ``serve:`` keys."""

    def write(plugins_dir: Path, plugins: dict[str, Any], **serve: Any) -> Path:
        path = tmp_path / "corral.yaml"
        config = {
            "plugin_dirs": [str(plugins_dir)],
            "data_dir": str(tmp_path / "data"),
            "cache_dir": str(compiled_cache_dir),
            "plugins": plugins,
            "serve": serve,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    return write


@pytest.fixture
def hostapi_config(
    configure: Callable[..., Path], plugin_dir: Callable[..., Path]
) -> Callable[..., Path]:
    """corral.yaml serving hostapi alone (signed webhooks), `settings` added to its own."""

    def write(settings: dict[str, Any] | None = None, **serve: Any) -> Path:
        return configure(
            plugin_dir("hostapi"), {"hostapi": hostapi_settings(**(settings or {}))}, **serve
        )

    return write


def hostapi_settings(**extra: Any) -> dict[str, Any]:
    return {
        "grant": HOSTAPI_GRANTS,
        "webhooks": {"secret": "env:CORRAL_TEST_WEBHOOK_SECRET"},
        **extra,
    }


# Eight attempts take at least 0.65 s (each wait is at least half of 100 ms, 200 ms, 200 ms...).
FAST_RETRIES = {"events": {"retry_backoff": "100ms", "max_backoff": "200ms", "max_attempts": 8}}


@contextmanager
def running_server(config_path: Path) -> Iterator[tuple[httpx.Client, ServeApp]]:
    """`corral serve` in this process (uvicorn in a thread), on a free loopback port."""
    with PluginHost(config=load_host_config(config_path)) as host:
        app = ServeApp(host, config_path=config_path)
        server = build_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.run, name="test-server")
        thread.start()
        try:
            until(lambda: server.started, what="the server to start")
            port = server.servers[0].sockets[0].getsockname()[1]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                until(lambda: client.get("/readyz").status_code == 200, what="readyz", timeout=120)
                yield client, app
        finally:
            server.should_exit = True
            thread.join(60)


def until(condition: Callable[[], object], *, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def post_event(client: httpx.Client, spec: dict[str, Any], delivery: str) -> httpx.Response:
    body = json.dumps(spec).encode()
    headers = {**signed(body), "X-GitHub-Delivery": delivery, "X-GitHub-Event": "push"}
    return client.post("/webhooks/hostapi", content=body, headers=headers)


def plugin_entry(client: httpx.Client, name: str) -> dict[str, Any]:
    """Plugin `name`'s entry in ``/plugins``."""
    [entry] = [p for p in client.get("/plugins").json()["plugins"] if p["name"] == name]
    return dict(entry)


def kv_entries(data_dir: Path, prefix: str) -> dict[str, str]:
    """What hostapi stored under `prefix`, read from the kv SQLite file."""
    path = data_dir / "kv.db"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        try:
            rows = db.execute(
                "SELECT key, value FROM kv_entries WHERE plugin = 'hostapi' "
                "AND key >= ? AND key < ?",
                (prefix, prefix + "\uffff"),
            ).fetchall()
        except sqlite3.OperationalError:  # the store is creating its tables right now
            return {}
    return {key: bytes(value).decode() for key, value in rows}


def acked(data_dir: Path) -> list[str]:
    """The event ids hostapi acknowledged, in the order it did."""
    return [v for _, v in sorted(kv_entries(data_dir, "acked/").items())]


# -- intake ---------------------------------------------------------------------------------


def test_webhooks_are_authenticated_checked_deduplicated_and_delivered(
    tmp_path: Path, plugin_dir: Callable[..., Path], configure: Callable[..., Path]
) -> None:
    config = configure(
        plugin_dir("hostapi", "hello"),
        {
            "hostapi": hostapi_settings(
                webhooks={"secret": "env:CORRAL_TEST_WEBHOOK_SECRET", "max_body": "2KB"}
            ),
            "hello": {
                "grant": ["config.read"],
                "webhooks": {"token": "env:CORRAL_TEST_WEBHOOK_TOKEN"},
            },
        },
    )
    data = tmp_path / "data"
    with running_server(config) as (client, _app):
        body = b'{"ok": true}'
        good = client.post("/webhooks/hostapi", content=body, headers=signed(body))
        assert good.status_code == 202 and good.json()["status"] == "queued"

        def refused(response: httpx.Response, status: int, words: str) -> None:
            assert response.status_code == status, response.text
            assert words in response.json()["error"]["message"]

        refused(client.post("/webhooks/hostapi", content=body), 401, "missing X-Hub-Signature")
        wrong = signed(body, secret="not-the-secret")
        refused(client.post("/webhooks/hostapi", content=body, headers=wrong), 401, "not match")
        tampered = signed(body)
        refused(
            client.post("/webhooks/hostapi", content=b'{"ok": false}', headers=tampered),
            401,
            "not match",
        )
        big = json.dumps({"pad": "x" * 3000}).encode()
        refused(client.post("/webhooks/hostapi", content=big, headers=signed(big)), 413, "limit")
        chunks = iter([b'{"pad": "', b"y" * 3000, b'"}'])  # no Content-Length: counted as read
        refused(client.post("/webhooks/hostapi", content=chunks, headers=signed(big)), 413, "limit")
        for bad, words in [
            (b'{"ok": tru', "not JSON: Expecting value"),
            (b'{"n": NaN}', "NaN is not a JSON value"),
            (b"\xff{}", "not UTF-8"),
        ]:
            sent = client.post("/webhooks/hostapi", content=bad, headers=signed(bad))
            refused(sent, 400, words)
        refused(client.post("/webhooks/nobody", content=body, headers=signed(body)), 404, "no")

        # A token in the URL, for senders that do not sign (Jira's app webhooks).
        jira = json.dumps({"webhookEvent": "jira:issue_updated"}).encode()
        refused(client.post("/webhooks/hello", content=jira), 401, "missing ?token=")
        refused(client.post("/webhooks/hello?token=guess", content=jira), 401, "wrong")
        assert client.post(f"/webhooks/hello?token={TOKEN}", content=jira).status_code == 202

        # Duplicates by delivery id, else by the body's hash.
        assert post_event(client, {"n": 1}, "d-1").json()["status"] == "queued"
        again = post_event(client, {"n": 1, "resent": True}, "d-1")
        assert again.status_code == 202 and again.json()["status"] == "duplicate"
        twice = client.post("/webhooks/hostapi", content=body, headers=signed(body))
        assert twice.json()["status"] == "duplicate"

        until(lambda: len(acked(data)) == 2, what="both hostapi events delivered")
        sha = "sha256:" + hashlib.sha256(body).hexdigest()
        assert acked(data) == [sha, "d-1"]

        # Acknowledged in the plugin's kv a moment before the queue records it.
        until(
            lambda: plugin_entry(client, "hostapi")["events"] == {"pending": 0, "dead": 0},
            what="an empty queue",
        )
        metrics = client.get("/metrics").text
        for plugin, outcome, count in [
            ("hostapi", "queued", 2),
            ("hostapi", "duplicate", 2),
            ("hostapi", "unauthorized", 3),
            ("hostapi", "too-large", 2),
            ("hostapi", "bad-request", 3),
            ("hello", "unauthorized", 2),
            ("hello", "queued", 1),
        ]:
            line = f'corral_webhooks_received_total{{outcome="{outcome}",plugin="{plugin}"}}'
            assert f"{line} {count}.0" in metrics
        assert 'plugin="nobody"' not in metrics
    queue = EventQueue.in_data_dir(data)
    events = {(e.plugin, e.type, e.state) for e in queue.list()}
    queue.close()
    assert events == {
        ("hostapi", "webhook", "delivered"),
        ("hostapi", "push", "delivered"),
        ("hello", "jira:issue_updated", "delivered"),
    }


# -- delivery -------------------------------------------------------------------------------


def test_failing_events_are_retried_in_order_then_dead_lettered_and_retried_by_the_cli(
    tmp_path: Path, hostapi_config: Callable[..., Path]
) -> None:
    config = hostapi_config(**FAST_RETRIES)
    data = tmp_path / "data"
    with running_server(config) as (client, _app):
        # The plugin fails for a while (as if its backend were down); the events wait in order.
        recovers = int(time.time() * 1000) + 400
        for n in range(3):
            post_event(client, {"fail_until_ms": recovers}, f"down-{n}")
        post_event(client, {"fail_times": 2}, "flaky")
        post_event(client, {"fail_times": 9}, "hopeless")  # 8 attempts allowed
        post_event(client, {}, "after")
        until(lambda: len(acked(data)) == 5, what="the events after recovery")
        assert acked(data) == ["down-0", "down-1", "down-2", "flaky", "after"]
        assert kv_entries(data, "tries/flaky") == {"tries/flaky": "3"}

        # Acknowledged in the plugin's kv a moment before the queue records it.
        until(
            lambda: plugin_entry(client, "hostapi")["events"] == {"pending": 0, "dead": 1},
            what="one dead letter",
        )
        assert 'corral_events_dead{plugin="hostapi"} 1.0' in client.get("/metrics").text

        cli = [sys.executable, "-m", "corral.cli", "events"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        listing = subprocess.run(
            [*cli, "list", "--state", "dead", "--json", "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        [dead] = json.loads(listing.stdout)
        assert (dead["delivery_id"], dead["attempts"]) == ("hopeless", 8)
        assert "failing on purpose (try 8)" in dead["last_error"]
        subprocess.run(
            [*cli, "retry", str(dead["seq"]), "--config", str(config)], env=env, check=True
        )
        # The running server picks it up from the shared file: try 9 fails, try 10 succeeds.
        until(lambda: "hopeless" in acked(data), what="the retried dead letter")
        assert kv_entries(data, "tries/hopeless") == {"tries/hopeless": "10"}
    assert [v for k, v in kv_entries(data, "acked-count/").items()] == ["1"] * 6


def _spawn_server(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        env=env,
    )
    base: list[str] = []

    def serving() -> bool:
        for line in log.read_text().splitlines()[::-1]:
            if "serving on http://" in line:
                base.append(line.split("serving on ", 1)[1].strip())
                return True
        assert process.poll() is None, log.read_text()
        return False

    until(serving, what="corral serve to listen", timeout=60)
    return process, base[0]


def test_queued_events_survive_kill_9_and_none_is_delivered_twice(
    tmp_path: Path, hostapi_config: Callable[..., Path]
) -> None:
    config = hostapi_config()
    data = tmp_path / "data"
    log = tmp_path / "server.log"
    process, base = _spawn_server(config, log)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            # The first test to run after hostapi changed compiles it: tens of seconds.
            until(lambda: client.get("/readyz").status_code == 200, what="readyz", timeout=120)
            for n in range(5):
                assert post_event(client, {}, f"early-{n}").status_code == 202
            until(lambda: len(acked(data)) == 5, what="the early events")
            # One event is being delivered (the plugin takes 3 s) when the server dies, and
            # more wait behind it.
            post_event(client, {"sleep_s": 3}, "in-flight")
            until(lambda: kv_entries(data, "tries/in-flight"), what="the slow delivery to start")
            for n in range(5):
                post_event(client, {}, f"late-{n}")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        queue = EventQueue.in_data_dir(data)
        pending = queue.list(state="pending")
        queue.close()
        assert [e.delivery_id for e in pending] == ["in-flight"] + [f"late-{n}" for n in range(5)]

        process, base = _spawn_server(config, log)
        until(lambda: len(acked(data)) == 11, what="the queued events after the restart")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    assert acked(data) == (
        [f"early-{n}" for n in range(5)] + ["in-flight"] + [f"late-{n}" for n in range(5)]
    )
    assert sorted(kv_entries(data, "acked-count/").values()) == ["1"] * 11
    # Unacknowledged when the server died, so delivered again: at least once.
    assert kv_entries(data, "tries/in-flight") == {"tries/in-flight": "2"}
    received = kv_entries(data, "received-at/")
    assert all(received[f"received-at/{e.delivery_id}"] == str(e.received_at_ms) for e in pending)


# -- schedules ------------------------------------------------------------------------------


def _runs(data: Path) -> list[tuple[int, int, str]]:
    """(start ms, end ms, tag) of each run of hostapi's `work` command."""
    runs = []
    for key, end in kv_entries(data, "runs/").items():
        _, start, tag = key.split("/")
        runs.append((int(start), int(end), tag))
    return sorted(runs)


def test_a_schedule_that_outlasts_its_interval_does_not_overlap(
    tmp_path: Path, hostapi_config: Callable[..., Path]
) -> None:
    schedule = [{"every": "200ms", "command": "work", "input": {"seconds": 0.7, "tag": "slow"}}]
    config = hostapi_config({"schedule": schedule})
    data = tmp_path / "data"
    with running_server(config):
        until(lambda: len(_runs(data)) >= 3, what="three runs")
    runs = _runs(data)
    for (_, end, _), (start, _, _) in itertools.pairwise(runs):
        assert start >= end - 5  # ms of clock granularity between guest and host clocks
    assert all(end - start >= 650 for start, end, _ in runs)


def test_runs_missed_while_the_server_was_down_run_once(
    tmp_path: Path, hostapi_config: Callable[..., Path]
) -> None:
    schedule = [
        {"every": "1m", "command": "work", "input": {"tag": "every"}},
        {"cron": "0 0 1 1 *", "command": "work", "input": {"tag": "yearly"}},
        {"every": "1m", "command": "work", "input": {"tag": "recent"}},
    ]
    names = [ScheduleEntry.model_validate(entry).job_name for entry in schedule]
    config = hostapi_config({"schedule": schedule})
    data = tmp_path / "data"
    queue = EventQueue.in_data_dir(data)
    now = int(time.time() * 1000)
    queue.record_run("hostapi", names[0], now - 30 * 60_000)  # 30 runs missed
    queue.record_run("hostapi", names[1], now - 3 * 366 * 86_400_000)  # 3 new years missed
    queue.record_run("hostapi", names[2], now - 10_000)  # not due for 50 s
    with running_server(config):
        until(lambda: len(_runs(data)) >= 2, what="the missed runs")
        time.sleep(1.0)  # room for any extra run that should not happen
    assert sorted(tag for _, _, tag in _runs(data)) == ["every", "yearly"]
    assert queue.last_run_ms("hostapi", names[0]) >= now
    assert queue.last_run_ms("hostapi", names[2]) == now - 10_000
    queue.close()


@pytest.mark.parametrize("concurrent", [False, True])
def test_events_wait_for_a_running_job_unless_the_manifest_allows_both(
    tmp_path: Path,
    plugin_dir: Callable[..., Path],
    configure: Callable[..., Path],
    concurrent: bool,
) -> None:
    plugins = plugin_dir("hostapi")
    if concurrent:
        manifest = plugins / "hostapi" / "manifest.yaml"
        data = yaml.safe_load(manifest.read_text())
        data["runtime"]["concurrent_events"] = True
        manifest.write_text(yaml.safe_dump(data))
    schedule = [{"every": "1m", "command": "work", "input": {"seconds": 2.5, "tag": "job"}}]
    config = configure(plugins, {"hostapi": hostapi_settings(schedule=schedule)})
    data_dir = tmp_path / "data"
    with running_server(config) as (client, _app):
        until(lambda: plugin_entry(client, "hostapi")["jobs_running"], what="the job to start")
        post_event(client, {}, "during-the-job")
        until(lambda: acked(data_dir) == ["during-the-job"], what="the event")
        until(lambda: _runs(data_dir), what="the job to finish")
    [(_, job_end, _)] = _runs(data_dir)
    acked_at = int(kv_entries(data_dir, "acked-at/")["acked-at/during-the-job"])
    assert (acked_at < job_end) == concurrent


# -- circuit breaker ------------------------------------------------------------------------


def test_the_breaker_opens_on_traps_fails_fast_and_recovers_after_a_trial_call(
    plugin_dir: Callable[..., Path], configure: Callable[..., Path]
) -> None:
    config = configure(
        plugin_dir("misbehave"),
        {"misbehave": {"limits": {"execution_timeout": "200ms"}}},
        breaker={"failures": 2, "open_for": "1s", "max_open_for": "10s"},
    )
    with running_server(config) as (client, _app):

        def call(command: str) -> httpx.Response:
            return client.post(f"/plugins/misbehave/call/{command}", json={"n": 10})

        def breaker() -> dict[str, Any]:
            state: dict[str, Any] = plugin_entry(client, "misbehave")["breaker"]
            return state

        def gauge() -> str:
            lines = client.get("/metrics").text.splitlines()
            return next(line for line in lines if line.startswith("corral_breaker_state{"))

        assert call("count").status_code == 200
        assert [call("loop").status_code for _ in range(2)] == [504, 504]
        refused = call("count")
        assert refused.status_code == 503
        assert "cut off" in refused.json()["error"]["message"]
        assert refused.headers["Retry-After"] == "1"
        assert breaker()["state"] == "open"
        assert gauge() == 'corral_breaker_state{plugin="misbehave"} 2.0'

        until(lambda: breaker()["retry_in_s"] == 0, what="the back-off to pass")
        assert call("loop").status_code == 504  # the one trial call traps: open for longer
        assert breaker()["state"] == "open" and breaker()["retry_in_s"] > 1.0  # 2 s now
        assert call("count").status_code == 503

        until(lambda: breaker()["retry_in_s"] == 0, what="the longer back-off to pass")
        assert call("count").status_code == 200  # the trial succeeds: closed again
        assert breaker() == {"state": "closed", "failures": 0, "retry_in_s": 0.0}
        assert gauge() == 'corral_breaker_state{plugin="misbehave"} 0.0'


def test_webhook_and_schedule_settings_follow_corral_yaml_edits(
    tmp_path: Path, plugin_dir: Callable[..., Path], configure: Callable[..., Path]
) -> None:
    plugins = plugin_dir("hostapi")
    config = configure(plugins, {"hostapi": {"grant": HOSTAPI_GRANTS}}, reload_debounce="50ms")
    body = b"{}"
    with running_server(config) as (client, _app):
        assert (
            client.post("/webhooks/hostapi", content=body, headers=signed(body)).status_code == 404
        )
        schedule = [{"every": "1m", "command": "work", "input": {"tag": "added"}}]
        configure(plugins, {"hostapi": hostapi_settings(schedule=schedule)}, reload_debounce="50ms")
        until(
            lambda: (
                client.post("/webhooks/hostapi", content=body, headers=signed(body)).status_code
                == 202
            ),
            what="webhooks to be taken",
        )
        until(lambda: _runs(tmp_path / "data"), what="the added job to run")


def test_a_burst_is_delivered_once_each_in_the_order_it_was_queued(
    tmp_path: Path, hostapi_config: Callable[..., Path]
) -> None:
    data = tmp_path / "data"
    with running_server(hostapi_config()) as (client, _app):
        with ThreadPoolExecutor(8) as senders:  # concurrent senders: commits are shared
            statuses = list(
                senders.map(lambda n: post_event(client, {}, f"b-{n}").status_code, range(150))
            )
        assert statuses == [202] * 150
        until(lambda: len(acked(data)) == 150, what="the burst to be delivered")
    queue = EventQueue.in_data_dir(data)
    queued_order = [e.delivery_id for e in queue.list(limit=1000)]
    queue.close()
    assert acked(data) == queued_order
    assert sorted(kv_entries(data, "acked-count/").values()) == ["1"] * 150


def test_deliveries_that_trap_open_the_breaker_and_wait_for_it_without_losing_attempts(
    tmp_path: Path, plugin_dir: Callable[..., Path], configure: Callable[..., Path]
) -> None:
    config = configure(
        plugin_dir("misbehave"),
        {
            "misbehave": {
                "limits": {"execution_timeout": "200ms"},
                "webhooks": {"token": "env:CORRAL_TEST_WEBHOOK_TOKEN"},
            }
        },
        breaker={"failures": 2, "open_for": "2s"},
        events={"retry_backoff": "100ms", "max_backoff": "100ms", "max_attempts": 3},
    )
    queue = EventQueue.in_data_dir(tmp_path / "data")
    with running_server(config) as (client, _app):
        # misbehave's on-event loops on an event of type "loop": every delivery times out.
        posted = client.post(
            f"/webhooks/misbehave?token={TOKEN}", json={}, headers={"X-GitHub-Event": "loop"}
        )
        assert posted.status_code == 202
        until(
            lambda: plugin_entry(client, "misbehave")["breaker"]["state"] == "open",
            what="two traps to open the breaker",
        )
        # Calls over HTTP are cut off too, and the event waits with its third attempt unspent.
        assert client.post("/plugins/misbehave/call/count", json={}).status_code == 503
        until(lambda: "cut off" in queue.list()[0].last_error, what="the event to be held")
        [held] = queue.list()
        assert (held.state, held.attempts) == ("pending", 2)
        until(lambda: queue.list()[0].state == "dead", what="the trial delivery")
        assert queue.list()[0].attempts == 3
    queue.close()
