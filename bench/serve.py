"""`corral serve` benchmark: calls over HTTP beside in-process calls, and drop-in load latency.

    .venv/bin/python bench/serve.py [--calls 2000] [--clients 4] [--drops 5]

- ``host.call`` in-process vs ``POST /plugins/hello/call/echo`` on loopback (one client, then
  `--clients` threads): requests/s and p50/p99 latency, measured in the same run.
- Webhooks: signed events/s accepted into the queue (202, committed) by `--clients` senders,
  and events/s delivered from the queue to hello's ``on-event``, next to ``host.send_event``
  in-process.
- Drop-in load latency: a bundle whose component is already in the compiled cache is copied
  into a watched plugin dir (as a new plugin name); the time from the end of the copy to its
  first successful call over HTTP. Target: under 1 s.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml

from corral import PluginHost
from corral.build import build_cached
from corral.config import load_host_config
from corral.serve import ServeApp, build_server

ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV, SECRET = "CORRAL_BENCH_WEBHOOK_SECRET", "bench-secret"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, latencies: list[float], wall: float) -> None:
    print(
        f"  {label:<34} {len(latencies) / wall:>9.0f} calls/s   "
        f"p50 {percentile(latencies, 0.5) * 1e3:7.3f} ms   "
        f"p99 {percentile(latencies, 0.99) * 1e3:7.3f} ms"
    )


def timed(call: Callable[[], Any], count: int, clients: int = 1) -> tuple[list[float], float]:
    """Latency of each of `count` calls, run by `clients` threads; and the wall time."""

    def one(_: int) -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    start = time.perf_counter()
    if clients == 1:
        latencies = [one(i) for i in range(count)]
    else:
        with ThreadPoolExecutor(clients) as pool:
            latencies = list(pool.map(one, range(count)))
    return latencies, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--drops", type=int, default=5)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()

    bundle = build_cached(ROOT / "examples" / "hello-python", ROOT / ".corral" / "bundles")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plugins = base / "plugins"
        shutil.copytree(bundle.directory, plugins / "hello")
        names = ["hello"] + [f"drop-{i}" for i in range(args.drops)]
        settings: dict[str, dict[str, Any]] = {name: {"grant": ["config.read"]} for name in names}
        os.environ[SECRET_ENV] = SECRET
        settings["hello"]["webhooks"] = {"secret": f"env:{SECRET_ENV}"}
        config = {
            "plugin_dirs": ["plugins"],
            "data_dir": "data",
            "cache_dir": str(ROOT / ".corral" / "cache"),  # compiled once per machine
            "plugins": settings,
            "serve": {"reload_debounce": "100ms"},
        }
        (base / "corral.yaml").write_text(yaml.safe_dump(config))
        with PluginHost(config=load_host_config(base / "corral.yaml")) as host:
            app = ServeApp(host, config_path=base / "corral.yaml")
            server = build_server(app, "127.0.0.1", 0)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.01)
            app.reloader.first_load_done.wait(300)
            port = server.servers[0].sockets[0].getsockname()[1]
            url = f"http://127.0.0.1:{port}"
            try:
                calls(host, url, args)
                webhooks(app, url, args)
                drop_ins(plugins, bundle.directory, url, args.drops, debounce=0.1)
            finally:
                server.should_exit = True
                thread.join(60)


def calls(host: PluginHost, url: str, args: argparse.Namespace) -> None:
    payload = {"msg": "hi"}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    with httpx.Client(base_url=url, limits=limits) as client:

        def over_http() -> None:
            response = client.post("/plugins/hello/call/echo", json=payload)
            assert response.status_code == 200, response.text

        for _ in range(50):  # warm up instances and connections
            host.call("hello", "echo", payload)
            over_http()
        print(f"calls: hello echo, {args.calls} each")
        in_process, wall = timed(lambda: host.call("hello", "echo", payload), args.calls)
        report("host.call (in-process)", in_process, wall)
        http_one, wall_one = timed(over_http, args.calls)
        report("POST /plugins/hello/call (1 client)", http_one, wall_one)
        http_many, wall_many = timed(over_http, args.calls, args.clients)
        report(f"POST /plugins/hello/call ({args.clients} clients)", http_many, wall_many)
        overhead = percentile(http_one, 0.5) - percentile(in_process, 0.5)
        print(f"  HTTP adds {overhead * 1e3:.3f} ms at p50 (1 client)")


def webhooks(app: ServeApp, url: str, args: argparse.Namespace) -> None:
    """Signed webhooks into the queue, then out to hello's on-event; baseline send_event."""
    n = args.events
    bodies = [json.dumps({"i": i, "pad": "x" * 200}).encode() for i in range(n)]
    queue = app.background.queue

    def pending() -> int:
        return int(queue.counts().get("hello", {}).get("pending", 0))

    print(f"webhooks: {n} signed events of {len(bodies[0])} bytes, {args.clients} senders")
    in_process, wall = timed(lambda: app.host.send_event("hello", "bench", {"i": 0}), n)
    print(f"  host.send_event (in-process)       {n / wall:>9.0f} events/s")
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    with httpx.Client(base_url=url, limits=limits) as client:
        sent = iter(range(n))
        lock = threading.Lock()

        def post() -> None:
            with lock:
                i = next(sent)
            digest = hmac.new(SECRET.encode(), bodies[i], hashlib.sha256).hexdigest()
            headers = {"X-Hub-Signature-256": f"sha256={digest}", "X-Request-Id": f"bench-{i}"}
            response = client.post("/webhooks/hello", content=bodies[i], headers=headers)
            assert response.status_code == 202, response.text

        started = time.perf_counter()
        latencies, wall = timed(post, n, args.clients)
        report("POST /webhooks/hello (accepted)", latencies, wall)
        left = pending()
        while pending():
            time.sleep(0.01)
        drained = time.perf_counter() - started
        print(
            f"  delivered from the queue           {n / drained:>9.0f} events/s "
            f"({left} still queued when the last was accepted; "
            f"{n / drained / (n / sum(in_process)):.2f}x of in-process send_event)"
        )


def drop_ins(plugins: Path, source: Path, url: str, drops: int, debounce: float) -> None:
    """Copy the (cached) bundle in under a new name; time until its first successful call."""
    print(f"drop-in load (compiled component cached, reload_debounce {debounce * 1e3:.0f} ms):")
    latencies = []
    with httpx.Client(base_url=url) as client:
        for i in range(drops):
            name = f"drop-{i}"
            staging = plugins.parent / f"staging-{name}"
            shutil.copytree(source, staging)
            manifest = staging / "manifest.yaml"
            manifest.write_text(manifest.read_text().replace("name: hello", f"name: {name}"))
            shutil.copytree(staging, plugins / name)  # the copy an operator would make
            copied = time.perf_counter()
            while True:
                response = client.post(f"/plugins/{name}/call/echo", json={"i": i})
                if response.status_code == 200:
                    break
                if time.perf_counter() - copied > 60:
                    raise SystemExit(f"{name} did not load: {response.text}")
                time.sleep(0.005)
            latencies.append(time.perf_counter() - copied)
            print(f"  {name}: first successful call {latencies[-1] * 1e3:.0f} ms after the copy")
    print(
        f"  median {statistics.median(latencies) * 1e3:.0f} ms, "
        f"max {max(latencies) * 1e3:.0f} ms (target < 1000 ms)"
    )


if __name__ == "__main__":
    main()
