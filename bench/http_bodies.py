"""Host memory for large HTTP bodies crossing the component boundary, each way.

    .venv/bin/python bench/http_bodies.py [--mib 16]

Each figure is the host process's peak RSS growth (VmHWM after resetting it, minus VmRSS
before) for one call of the hostapi plugin, measured in a fresh process per figure against a
loopback server in this one. The guest's own copies of the body live in its linear memory,
which is part of the host process too, so they are included.

Baseline, in the same run: bytes as one `list<u8>` value, as HTTP bodies crossed before they
moved to chunked handles (kv.set and kv.get still pass values that way). Its size is smaller
(--baseline-mib): Wasmtime traps a host call that lifts more than about 2.5 MiB of list<u8>.

A text body (UTF-8) crosses as strings (`read-body-text`, since 0.1.1), any other as bytes.

Target: HTTP bodies <= 3x the payload, both ways.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GRANT = ["network.http.outbound", "config.read", "task.read_write", "kv"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # the body the plugin downloads: bytes, or text with ?text
        size = int(self.path.rpartition("=")[2])
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = (
            b'{"key": "DEMO-1", "x": 1}, ' * 2048
            if "text" in self.path
            else bytes(range(256)) * 256
        )
        for start in range(0, size, len(block)):
            self.wfile.write(block[: size - start])

    def do_POST(self) -> None:  # the body the plugin uploads: read and counted, not kept
        left = int(self.headers["Content-Length"])
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _memory() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    return {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }


def child(op: str, port: int, size: int, plugins: Path, data: Path) -> None:
    """One measurement, in its own process: `op` once after a small warm-up of the same op."""
    from corral import PluginHost

    limit = f"{size + (1 << 20)}B"
    settings = {
        "hostapi": {
            "grant": GRANT,
            "http": {
                "allow_private_networks": True,
                "max_request_body": limit,
                "max_response_body": limit,
            },
            "kv": {"max_value": limit, "max_total": f"{2 * size + (1 << 20)}B"},
            "limits": {"memory_limit": "256MB", "execution_timeout": "60s"},
        }
    }
    url = f"http://127.0.0.1:{port}/"
    ops = {
        "http upload": lambda n: ("http.big", {"url": url, "size": n}),
        "http download": lambda n: ("http.big", {"url": f"{url}?n={n}", "method": "GET"}),
        "http download, text": lambda n: (
            "http.big",
            {"url": f"{url}?text&n={n}", "method": "GET"},
        ),
        "list<u8> to host": lambda n: ("kv.set-big", {"key": "k", "size": n}),
        "list<u8> to guest": lambda n: ("kv.get-size", {"key": "k"}),
    }
    with PluginHost(plugin_dirs=[plugins], data_dir=data, plugins=settings) as host:
        (info,) = host.load()
        assert info.state == "loaded", info.reason
        if op == "list<u8> to guest":
            host.call("hostapi", "kv.set-big", {"key": "k", "size": size})
        host.call("hostapi", *ops[op](4096))  # warm-up: code paths, not memory
        before = _memory()["VmRSS"]
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        started = time.perf_counter()
        answer = host.call("hostapi", *ops[op](size))
        seconds = time.perf_counter() - started
        peak = _memory()["VmHWM"]
        assert "ok" in answer, answer
    print(json.dumps({"growth": peak - before, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--baseline-mib", type=int, default=2)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        op, port, size, plugins, data = args.child
        child(op, int(port), int(size), Path(plugins), Path(data))
        return

    from corral.build import build_cached

    bundle = build_cached(ROOT / "tests" / "plugins" / "hostapi", ROOT / ".corral" / "bundles")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        shutil.copytree(bundle.directory, plugins / "hostapi")
        for op, mib in [
            ("list<u8> to host", args.baseline_mib),
            ("list<u8> to guest", args.baseline_mib),
            ("http upload", args.mib),
            ("http download", args.mib),
            ("http download, text", args.mib),
        ]:
            data = Path(tmp) / op.replace(" ", "-").replace("<", "").replace(">", "")
            command = [sys.executable, __file__, "--child", op, str(port), str(mib << 20)]
            done = subprocess.run(
                [*command, str(plugins), str(data)], capture_output=True, text=True, check=False
            )
            if done.returncode:
                sys.exit(f"{op} failed:\n{done.stderr}")
            rows.append((op, mib, json.loads(done.stdout.splitlines()[-1])))
    server.shutdown()

    print("host peak RSS growth for one call moving the payload, and the call's time")
    for op, mib, figures in rows:
        growth = figures["growth"]
        print(
            f"  {op:20} {mib:3d} MiB payload  {growth / (1 << 20):8.1f} MiB"
            f"  {growth / (mib << 20):5.1f}x  {figures['seconds']:6.2f} s"
        )


if __name__ == "__main__":
    main()
