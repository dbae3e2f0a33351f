"""Host side of `tasks.put-many` and of a `links` query, in the shape a sync plugin sends them.

    .venv/bin/python bench/putmany.py [--batches 20] [--batch 100]

No component: the capability's host functions are called as the runtime calls them (JSON text
in, JSON text out) on a real SQLite file, so the figures are the host's own cost per call.
Each round is a batch of new tasks, each with a link whose snapshot is a ~0.7 KB JSON object;
then the same tasks updated with new snapshots; then link-only items (an id and a link); then
a ``links`` query for the batch's external keys. Prints milliseconds per call, wall clock and
this process's CPU time: the commit's fsync and other processes on a shared machine make the
wall clock noisy, while the CPU time is the Python and SQLite work this benchmark is about.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.capabilities._base import CallContext, PluginContext
from corral.capabilities.tasks import TasksCapability
from corral.host_services import HostServices
from corral.manifest import parse_manifest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "bench"
SYSTEM = "jira"


def snapshot(key: str, round_: int) -> dict[str, Any]:
    """A sync plugin's base: the mapped values both sides last agreed on, and a hash."""
    base = {
        "title": f"{key}: a summary of some length for round {round_}",
        "description": "Steps to reproduce the problem, as the reporter wrote them. " * 6,
        "status": "In Progress",
        "priority": "Medium",
        "assignee": "5b10ac8d82e05b22cc7d4ef5",
        "labels": ["backend", "sync", f"r{round_}"],
        "due_date": "2026-12-01",
    }
    digest = hashlib.sha1(json.dumps(base).encode()).hexdigest()
    return {"key": key, "base": base, "hash": digest}


def link(key: str, round_: int) -> dict[str, Any]:
    return {"system": SYSTEM, "external_key": key, "snapshot": snapshot(key, round_)}


def batches(first: int, size: int) -> tuple[list[dict[str, Any]], ...]:
    """Three batches over the same tasks: create, update, link only."""
    keys = [f"1{n:06d}" for n in range(first, first + size)]
    ids = [f"task-{key}" for key in keys]
    created = [
        {"id": task_id, "title": f"{key}: a summary", "description": "Steps " * 40,
         "status": "todo", "priority": "medium", "assignee": None, "labels": ["backend"],
         "due_date": None, "link": link(key, 0)}
        for task_id, key in zip(ids, keys, strict=True)
    ]  # fmt: skip
    updated = [
        {"id": task_id, "title": f"{key}: a new summary", "status": "doing",
         "expected_version": 1, "link": link(key, 1)}
        for task_id, key in zip(ids, keys, strict=True)
    ]  # fmt: skip
    link_only = [
        {"id": task_id, "link": link(key, 2)} for task_id, key in zip(ids, keys, strict=True)
    ]
    return created, updated, link_only


def manifest_text() -> str:
    """The test plugin's manifest, with a checksum the store never looks at."""
    text = (ROOT / "tests" / "plugins" / "hostapi" / "manifest.yaml").read_text()
    return text.replace('checksum: ""', f'checksum: "sha256:{"0" * 64}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        services = HostServices(Path(tmp) / "data")
        context = PluginContext(
            name=PLUGIN,
            manifest=parse_manifest(manifest_text().encode(), Path("manifest.yaml")),
            granted=frozenset({"task.read", "task.write"}),
            options={},
            plugin_config={},
            data_dir=Path(tmp) / "data",
            services=services,
        )
        capability = TasksCapability()
        functions = {
            f.name: f.impl for f in capability.host_functions(capability.configure(context))
        }
        put_many: Callable[..., str] = functions["put-many"]
        query: Callable[..., Any] = functions["query"]

        labels = ("create", "update", "link only", "links query")
        wall = dict.fromkeys(labels, 0.0)
        cpu = dict.fromkeys(labels, 0.0)

        def timed(label: str, action: Callable[[], Any]) -> Any:
            started, started_cpu = time.perf_counter(), time.process_time()
            result = action()
            wall[label] += time.perf_counter() - started
            cpu[label] += time.process_time() - started_cpu
            return result

        for round_ in range(args.batches):
            created, updated, link_only = batches(round_ * args.batch, args.batch)
            keys = [item["link"]["external_key"] for item in created]
            for label, items in zip(labels, (created, updated, link_only), strict=False):
                text = json.dumps(items, separators=(",", ":"))
                call = CallContext(PLUGIN, time.monotonic() + 60)
                timed(label, lambda: put_many(call, text))  # noqa: B023 (called at once)
            wanted = json.dumps({"links": {"system": SYSTEM, "external_keys": keys}})
            call = CallContext(PLUGIN, time.monotonic() + 60)
            page = timed("links query", lambda: query(call, wanted, None, args.batch))  # noqa: B023
            assert len(json.loads(page.items)) == args.batch
        services.close()

    print(f"{args.batches} rounds of {args.batch} tasks, each with a ~0.7 KB link snapshot")
    per_call = 1000 / args.batches
    for label in labels:
        print(f"{label:<12} {wall[label] * per_call:7.2f} ms per call", end=" ")
        print(f"({cpu[label] * per_call:.2f} ms CPU)")


if __name__ == "__main__":
    main()
