"""Calls host functions as its input says and reports what came back, errors included."""

import json
import os
import sys
import time

from componentize_py_types import Err
from corral_sdk import errors
from corral_sdk import tasks as sdk_tasks
from wit_world import exports
from wit_world.imports import config, http, kv, log, tasks, types


def _error(error):
    kind = errors.kind_of(error)
    payload = error.value.value
    if kind == "rate-limited":
        return {"error": kind, "message": payload.message, "retry_after_ms": payload.retry_after_ms}
    return {"error": kind, "message": payload}


def _page(page):
    return {"items": json.loads(page.items), "next_cursor": page.next_cursor}


def _link(link):
    return {
        "task_id": link.task_id,
        "system": link.system,
        "external_key": link.external_key,
        "snapshot": link.snapshot,
    }


def _http(a):
    request = http.Request(
        method=a.get("method", "GET"),
        url=a["url"],
        headers=[tuple(h) for h in a.get("headers", [])],
        body=a.get("body", "").encode(),
        timeout_ms=a.get("timeout_ms"),
    )
    response = http.send(request)
    return {
        "status": response.status,
        "headers": [list(h) for h in response.headers],
        "body": response.body.decode("utf-8", "replace"),
    }


def _sandbox(a):
    """What the guest can see of its environment."""
    report = {"env": dict(os.environ), "argv": sys.argv}
    for path in ["/", "/etc/passwd", "."]:
        try:
            report[f"listdir {path}"] = os.listdir(path)
        except OSError as exc:
            report[f"listdir {path}"] = f"error: {exc.__class__.__name__}"
    try:
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("127.0.0.1", int(a.get("port", 80))))
        report["socket"] = "connected"
    except Exception as exc:
        report["socket"] = f"error: {exc.__class__.__name__}"
    return report


def _bench(a):
    """Microseconds per call of `op`, timed inside the guest over `n` calls."""
    task_id = a.get("task_id", "")
    ops = {
        "noop": lambda: None,
        "log": lambda: log.log(log.Level.DEBUG, "bench", []),
        "kv.get": lambda: kv.get("bench"),
        "tasks.get": lambda: tasks.get(task_id),
    }
    op, n = ops[a["op"]], int(a["n"])
    started = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - started) / n * 1e6


def _work(a):
    """Take `seconds`, then record the run as ``runs/<start ms>/<tag>`` = end ms (schedules)."""
    start = time.time()
    time.sleep(float(a.get("seconds", 0)))
    key = f"runs/{int(start * 1000):015d}/{a.get('tag', '')}"
    kv.set(key, str(int(time.time() * 1000)).encode())
    return "worked"


COMMANDS = {
    "config.get": lambda a: json.loads(config.get(a["key"])),
    "config.get-all": lambda a: json.loads(config.get_all()),
    "log": lambda a: log.log(
        getattr(log.Level, a.get("level", "INFO").upper()),
        a["message"],
        [tuple(f) for f in a.get("fields", [])],
    ),
    "log.many": lambda a: (
        [log.log(log.Level.INFO, f"line {i}", []) for i in range(a["n"])] and a["n"]
    ),
    "http": _http,
    "http.many": lambda a: [_http({"url": a["url"]})["status"] for _ in range(a["n"])],
    "kv.get": lambda a: kv.get(a["key"]).decode(),
    "kv.set": lambda a: kv.set(a["key"], a["value"].encode()),
    "kv.delete": lambda a: kv.delete(a["key"]),
    "kv.list": lambda a: (lambda p: {"keys": p.keys, "next_cursor": p.next_cursor})(
        kv.list_keys(a.get("prefix", ""), a.get("cursor"), a.get("limit", 100))
    ),
    "kv.cas": lambda a: kv.compare_and_set(
        a["key"],
        None if a.get("expected") is None else a["expected"].encode(),
        a["value"].encode(),
    ),
    "tasks.get": lambda a: json.loads(tasks.get(a["id"])),
    "tasks.query": lambda a: _page(
        tasks.query(json.dumps(a.get("filter", {})), a.get("cursor"), a.get("limit", 100))
    ),
    "tasks.put-many": lambda a: json.loads(tasks.put_many(json.dumps(a["tasks"]))),
    "tasks.upsert-generated": lambda a: _upsert_generated(a),
    "tasks.delete": lambda a: tasks.delete(a["id"], a.get("expected_version")),
    "tasks.changes": lambda a: _page(tasks.changes_since(a.get("cursor"), a.get("limit", 100))),
    "tasks.all": lambda a: [t["id"] for t in sdk_tasks.iter_query(limit=a["page"], **a["filter"])],
    "tasks.get-link": lambda a: _link(tasks.get_link(a["system"], a["external_key"])),
    "tasks.links-for-task": lambda a: [_link(x) for x in tasks.links_for_task(a["task_id"])],
    "tasks.put-link": lambda a: tasks.put_link(
        tasks.Link(
            task_id=a["task_id"],
            system=a["system"],
            external_key=a["external_key"],
            snapshot=json.dumps(a.get("snapshot", {})),
        )
    ),
    "tasks.delete-link": lambda a: tasks.delete_link(a["system"], a["external_key"]),
    "sandbox": _sandbox,
    "bench": _bench,
    "work": _work,
}


def _upsert_generated(a):
    """Upsert `count` generated tasks in batches of `batch` (for the bulk benchmark)."""
    count, batch = int(a["count"]), int(a.get("batch", 1000))
    done = 0
    while done < count:
        n = min(batch, count - done)
        items = [
            {
                "id": f"bench-{done + i}",
                "title": f"Task {done + i}",
                "status": "todo",
                "labels": ["bench"],
                "custom_fields": {"n": done + i},
            }
            for i in range(n)
        ]
        tasks.put_many(json.dumps(items))
        done += n
    return done


class Handler(exports.Handler):
    def invoke(self, command: str, input: str) -> str:
        args = json.loads(input) or {}
        try:
            return json.dumps({"ok": COMMANDS[command](args)})
        except Err as error:
            return json.dumps(_error(error))

    def on_event(self, event: exports.handler.Event) -> None:
        log.log(log.Level.INFO, f"event {event.type}", [("id", event.id)])
        _take_event(event, json.loads(event.payload or "null"))


def _bump(key):
    """Increment a counter in kv (one delivery at a time per plugin, so no race)."""
    try:
        n = int(kv.get(key).decode())
    except Err:
        n = 0
    kv.set(key, str(n + 1).encode())
    return n + 1


def _take_event(event, spec):
    """For the serve tests: fail as `spec` says, else record the event as acknowledged.

    `fail_times`: fail that many deliveries first; `fail_until_ms`: fail until then (wall
    clock); `sleep_s`: take that long first. The time received is kept under
    ``received-at/<id>``. Acknowledged events are kept in order under ``acked/<n>``, with
    the time under ``acked-at/<id>``; ``acked-count/<id>`` counts how often each one was.
    """
    event_id = event.id
    spec = spec if isinstance(spec, dict) else {}
    kv.set(f"received-at/{event_id}", str(event.received_at).encode())
    tries = _bump(f"tries/{event_id}")
    time.sleep(float(spec.get("sleep_s", 0)))
    failing = tries <= int(spec.get("fail_times", 0))
    if failing or time.time() * 1000 < float(spec.get("fail_until_ms", 0)):
        raise Err(types.PluginError_Unavailable(f"failing on purpose (try {tries})"))
    kv.set(f"acked/{_bump('acked'):06d}", event_id.encode())
    kv.set(f"acked-at/{event_id}", str(int(time.time() * 1000)).encode())
    _bump(f"acked-count/{event_id}")
