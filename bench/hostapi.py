"""Host API benchmark: host-call round trips from inside a component, and bulk task upserts.

    .venv/bin/python bench/hostapi.py [--calls 5000] [--tasks 10000] [--batch 500]

Round trips are timed inside the guest (a loop of n calls), beside the same loop calling
nothing, so the difference is the cost of crossing into the host and back; `kv.get` is also
timed while the call watcher `corral run` uses records every host call. The bulk figure is a
plugin upserting generated tasks through `tasks.put-many` in batches, against the host
calling the same SQLite store directly in the same run. Target: 10,000 upserts <= 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from corral import PluginHost
from corral._observe import watch_call
from corral.build import build_cached
from corral.run import CallRecorder
from corral.tasks import SQLiteTaskStore

ROOT = Path(__file__).resolve().parent.parent


def generated(count: int, batch: int) -> list[list[dict[str, object]]]:
    items = [
        {"id": f"bench-{i}", "title": f"Task {i}", "status": "todo", "labels": ["bench"],
         "custom_fields": {"n": i}}
        for i in range(count)
    ]  # fmt: skip
    return [items[i : i + batch] for i in range(0, count, batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    bundle = build_cached(ROOT / "tests" / "plugins" / "hostapi", ROOT / ".corral" / "bundles")
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        shutil.copytree(bundle.directory, plugins / "hostapi")
        grant = ["network.http.outbound", "config.read", "task.read_write", "kv"]
        settings = {"hostapi": {"grant": grant, "log": {"level": "info"}}}
        with PluginHost(
            plugin_dirs=[plugins], data_dir=Path(tmp) / "data", plugins=settings
        ) as host:
            (info,) = host.load()
            assert info.state == "loaded", info.reason
            (task,) = host.task_store.put_many([{"title": "bench"}], actor="host")
            host.call("hostapi", "kv.set", {"key": "bench", "value": "x" * 64})

            def per_call(op: str) -> float:
                answer = host.call(
                    "hostapi", "bench", {"op": op, "n": args.calls, "task_id": task.id}
                )
                return float(answer["ok"])

            per_call("noop")  # warm up the instance
            noop = per_call("noop")
            rows = [(op, per_call(op)) for op in ("log", "kv.get", "tasks.get")]
            with watch_call(CallRecorder()):
                rows.append(("kv.get (watched)", per_call("kv.get")))

            started = time.perf_counter()
            host.call(
                "hostapi", "tasks.upsert-generated", {"count": args.tasks, "batch": args.batch}
            )
            plugin_s = time.perf_counter() - started

        direct = SQLiteTaskStore(Path(tmp) / "direct.db")
        started = time.perf_counter()
        for batch in generated(args.tasks, args.batch):
            direct.put_many(batch, actor="host")
        direct_s = time.perf_counter() - started
        direct.close()

    print(f"guest loop, no host call   {noop:8.2f} us per iteration (baseline)")
    for op, us in rows:
        print(f"host call {op:<16} {us:8.2f} us per call   ({us - noop:.2f} us over the baseline)")
    print(
        f"{args.tasks} upserts by the plugin, batches of {args.batch}: {plugin_s:.3f} s "
        "(target <= 1 s)"
    )
    print(
        f"{args.tasks} upserts by the host, same store code:  {direct_s:.3f} s "
        f"(plugin/host ratio {plugin_s / direct_s:.2f}x)"
    )


if __name__ == "__main__":
    main()
