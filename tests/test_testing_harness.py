"""`corral.testing`: plugins built from source, run in a real host, against the test's network.

The HTTP tests use the hostapi test plugin (its manifest allows ``http://localhost:*`` and
``http://127.0.0.1:*``): every check between the plugin and the test's handler is production's.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conftest import BUILD_DIR, PLUGIN_SOURCES, ROOT, public_name
from corral import ConfigError, PluginError, PluginUnavailable, ProtocolError
from corral.build import source_digest
from corral.bundle import Bundle
from corral.testing import PUBLIC_ADDRESS, LogLine, PluginHarness, pytest_plugin
from corral.testing._network import TestNetwork

HOSTAPI = PLUGIN_SOURCES["hostapi"]
HELLO = PLUGIN_SOURCES["hello"]
MakePlugin = Callable[..., PluginHarness]


def echo(request: httpx.Request) -> httpx.Response:
    """Answers with what it got: method, URL, headers, body."""
    return httpx.Response(
        200,
        json={
            "method": request.method,
            "url": str(request.url),
            "headers": dict(request.headers),
            "body": request.content.decode(),
        },
    )


def ok(answer: dict[str, Any]) -> Any:
    assert "ok" in answer, answer
    return answer["ok"]


def test_the_fixture_builds_from_source_and_sees_results_logs_and_errors(
    corral_plugin: MakePlugin,
) -> None:
    plugin = corral_plugin(HELLO, grants=["config.read"], config={"greeting": "Howdy"})
    assert plugin.name == "hello"
    assert plugin.call("greet", {"name": "Ada"}) == {"message": "Howdy, Ada!"}
    assert plugin.logs == [LogLine("info", "greeting", {"name": "Ada"})]
    with pytest.raises(PluginError) as failure:
        plugin.call("no-such-command")
    assert failure.value.kind == "invalid-input"
    plugin.send_event("issue.updated", {"key": "OPS-1"}, id="e1")
    assert plugin.logs[-1] == LogLine("info", "event", {"type": "issue.updated", "id": "e1"})


def test_a_second_session_reuses_the_build(tmp_path: Path, bundles: dict[str, Bundle]) -> None:
    # The suite built hostapi already: the harness finds it by the same source hash, so this
    # takes no componentize-py run (which would take ~20 s and leave a second directory).
    built = BUILD_DIR / "bundles" / f"hostapi-{source_digest(HOSTAPI)}"
    assert built.is_dir()
    stamp = (built / "plugin.wasm").stat().st_mtime_ns
    with PluginHarness(HOSTAPI, build_dir=BUILD_DIR / "bundles", data_dir=tmp_path) as plugin:
        assert ok(plugin.call("kv.set", {"key": "k", "value": "v"})) is None
    assert (built / "plugin.wasm").stat().st_mtime_ns == stamp


def test_config_the_manifest_refuses_fails_the_harness_with_the_reason(
    corral_plugin: MakePlugin,
) -> None:
    with pytest.raises(PluginUnavailable, match="greeting"):
        corral_plugin(HELLO, grants=["config.read"], config={"greeting": 7})


def test_kv_and_tasks_are_real_stores_the_test_can_seed_and_read(
    corral_plugin: MakePlugin,
) -> None:
    plugin = corral_plugin(HOSTAPI)
    plugin.kv.set("seeded", "by the test")
    assert ok(plugin.call("kv.get", {"key": "seeded"})) == "by the test"
    ok(plugin.call("kv.set", {"key": "written", "value": "by the plugin"}))
    assert plugin.kv.get("written") == b"by the plugin"
    assert plugin.kv.get("missing") is None
    assert plugin.kv.keys() == ["seeded", "written"]
    (stored,) = ok(plugin.call("tasks.put-many", {"tasks": [{"title": "One"}]}))
    assert plugin.tasks.get(stored["id"]).title == "One"


def test_requests_reach_the_handler_with_credentials_the_plugin_never_sees(
    corral_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret-token")
    plugin = corral_plugin(
        HOSTAPI,
        http=echo,
        credentials=[
            {"hosts": ["http://localhost:*"], "scheme": "bearer", "secret": "env:API_TOKEN"}
        ],
    )
    answer = ok(
        plugin.call("http", {"method": "POST", "url": "http://localhost:9/a?b=1", "body": "hi"})
    )
    assert answer["status"] == 200
    (request,) = plugin.http_requests
    assert (request.method, str(request.url), request.content) == (
        "POST", "http://localhost:9/a?b=1", b"hi"
    )  # fmt: skip
    assert request.headers["authorization"] == "Bearer s3cret-token"
    # The handler echoed the token back; the host masked it before the plugin saw it.
    assert "s3cret-token" not in answer["body"]
    assert json.loads(answer["body"])["headers"]["authorization"] != "Bearer s3cret-token"


def test_the_allowlist_is_production_s(corral_plugin: MakePlugin) -> None:
    plugin = corral_plugin(HOSTAPI, http=echo, allowed_hosts=["http://localhost:8080"])
    denied = plugin.call("http", {"url": "http://localhost:9999/"})
    assert denied["error"] == "permission-denied"
    assert "not in the allowed hosts" in denied["message"]
    assert plugin.http_requests == []
    assert ok(plugin.call("http", {"url": "http://localhost:8080/"}))["status"] == 200


def test_the_address_guard_checks_the_test_s_dns_answers(corral_plugin: MakePlugin) -> None:
    plugin = corral_plugin(HOSTAPI, http=echo, dns={"localhost": "10.0.0.7"})
    denied = plugin.call("http", {"url": "http://localhost:80/"})
    assert denied["error"] == "permission-denied"
    assert "resolves to 10.0.0.7 (private)" in denied["message"]
    literal = plugin.call("http", {"url": "http://127.0.0.1:80/"})
    assert literal["error"] == "permission-denied" and "loopback" in literal["message"]
    assert plugin.http_requests == []


def test_redirects_are_followed_by_the_host_and_each_hop_recorded(
    corral_plugin: MakePlugin,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new"})
        return httpx.Response(
            200, content=gzip.compress(b"moved"), headers={"Content-Encoding": "gzip"}
        )

    plugin = corral_plugin(HOSTAPI, http=handler)
    answer = ok(plugin.call("http", {"url": "http://localhost:80/old"}))
    assert (answer["status"], answer["body"]) == (200, "moved")
    assert [r.url.path for r in plugin.http_requests] == ["/old", "/new"]


def test_a_simulated_network_failure_is_the_plugin_s_to_handle(corral_plugin: MakePlugin) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    plugin = corral_plugin(HOSTAPI, http=down)
    assert plugin.call("http", {"url": "http://localhost:80/"})["error"] == "unavailable"


def test_a_bug_in_the_test_s_handler_is_raised_from_the_call(corral_plugin: MakePlugin) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return {"status": 200}["missing"]  # type: ignore[return-value]

    plugin = corral_plugin(HOSTAPI, http=broken)
    with pytest.raises(KeyError, match="missing"):
        plugin.call("http", {"url": "http://localhost:80/"})
    assert ok(plugin.call("kv.set", {"key": "k", "value": "v"})) is None  # raised once only


def test_an_asgi_app_answers_on_one_event_loop(corral_plugin: MakePlugin) -> None:
    seen: list[str] = []

    async def hello(request: Request) -> JSONResponse:
        seen.append(request.headers["x-trace"])
        return JSONResponse({"hello": request.path_params["name"]})

    app = Starlette(routes=[Route("/hello/{name}", hello)])
    plugin = corral_plugin(HOSTAPI, asgi=app)
    for name in ("ada", "bob"):
        answer = ok(
            plugin.call(
                "http", {"url": f"http://localhost:80/hello/{name}", "headers": [["X-Trace", name]]}
            )
        )
        assert json.loads(answer["body"]) == {"hello": name}
    assert seen == ["ada", "bob"]


def test_log_lines_keep_level_message_and_fields_apart(corral_plugin: MakePlugin) -> None:
    plugin = corral_plugin(HOSTAPI)
    ok(plugin.call("log", {"level": "warn", "message": "careful", "fields": [["n", "1"]]}))
    assert plugin.logs == [LogLine("warn", "careful", {"n": "1"})]


def test_without_a_network_requests_that_pass_the_checks_are_unavailable() -> None:
    network = TestNetwork()
    assert network.resolve("api.example.com", 443) == [PUBLIC_ADDRESS]
    with pytest.raises(httpx.ConnectError):
        network._answer(httpx.Request("GET", "http://api.example.com/"))
    with pytest.raises(ConfigError, match="not both"):
        TestNetwork(echo, app=lambda *a: None)  # type: ignore[arg-type,return-value]


def test_the_fixture_is_registered_by_an_entry_point_named_after_its_module() -> None:
    # `-p corral.testing.pytest_plugin` (conftest.run_plugin_tests, a source tree) and the installed
    # entry point must be one name, or pytest would refuse to register the module twice.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["pytest11"]
    assert entry_points == {pytest_plugin.__name__: pytest_plugin.__name__}
    assert callable(pytest_plugin.corral_plugin)


def test_guest_output_is_kept_apart_from_log_lines_and_escaped(corral_plugin: MakePlugin) -> None:
    plugin = corral_plugin(PLUGIN_SOURCES["misbehave"])
    assert plugin.call("forge") == "forged"
    assert plugin.stdout == "ok\nCRITICAL corral.host: forged line\\r\\x1b[2Kforged too"
    assert plugin.stderr == ""
    assert plugin.logs == []


def test_the_public_names_of_corral_testing_are_its_all() -> None:
    import corral.testing

    public = {name for name in vars(corral.testing) if public_name(name)}
    modules = {name for name in public if isinstance(getattr(corral.testing, name), ModuleType)}
    assert public - modules == set(corral.testing.__all__)


def test_a_result_that_breaks_the_declared_output_schema_fails_the_call(
    corral_plugin: MakePlugin, tmp_path: Path
) -> None:
    # hello as its author might get it wrong: echo declared to return a string
    source = tmp_path / HELLO.name
    shutil.copytree(HELLO, source, ignore=shutil.ignore_patterns("plugin.wasm", "__pycache__"))
    manifest = source / "manifest.yaml"
    manifest.write_text(
        manifest.read_text()
        + "commands:\n  echo:\n    description: Echo.\n    output_schema: {type: string}\n"
    )
    plugin = corral_plugin(source, config={})
    assert plugin.call("echo", "hi") == "hi"
    with pytest.raises(ProtocolError, match="echo"):
        plugin.call("echo", {"not": "a string"})
