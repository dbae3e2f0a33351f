"""The embedding API: `PluginHost` as a host application uses it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import corral
from conftest import public_name
from corral import HostNotReady, PluginError, PluginHost

HostFactory = Callable[..., PluginHost]
GRANT = {"hello": {"grant": ["config.read"], "config": {"greeting": "Ahoy"}}}


def test_public_names_match_all() -> None:
    public = {name for name in dir(corral) if public_name(name)}
    modules = {
        *("bundle", "capabilities", "config", "host", "host_services", "manifest"),
        *("permissions", "registry", "runtime", "tasks", "kvstore", "build", "cli", "testing"),
        *("sync", "serve", "signing", "scaffold", "run"),
    }
    assert public - modules == set(corral.__all__) - {"__version__"}


def test_call_round_trips_json(make_host: HostFactory) -> None:
    host = make_host("hello", plugins=GRANT)
    assert host.call("hello", "echo", {"msg": "hi", "n": [1, 2.5, None]}) == {
        "msg": "hi",
        "n": [1, 2.5, None],
    }
    assert host.call("hello", "greet", {"name": "you"}) == {"message": "Ahoy, you!"}
    assert host.call("hello", "config") == {"greeting": "Ahoy"}


def test_plugin_error_values_become_plugin_error(make_host: HostFactory) -> None:
    host = make_host("hello", plugins=GRANT)
    with pytest.raises(PluginError) as info:
        host.call("hello", "unknown")
    assert (info.value.plugin, info.value.kind) == ("hello", "invalid-input")
    assert info.value.message == "unknown command 'unknown' (known: config, echo, greet, repeat)"


def test_acall_runs_off_the_event_loop(make_host: HostFactory) -> None:
    host = make_host("hello", "misbehave", plugins=GRANT)

    async def main() -> tuple[object, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        slow = await host.acall("misbehave", "spin", {"seconds": 0.5})
        echoed = await host.acall("hello", "echo", "async")
        task.cancel()
        assert slow > 0
        return echoed, ticks

    echoed, ticks = asyncio.run(main())
    assert echoed == "async"
    assert ticks >= 20  # the loop kept running while the plugin spun


def test_events_reach_on_event(make_host: HostFactory, caplog: pytest.LogCaptureFixture) -> None:
    host = make_host("hello", plugins=GRANT)
    with caplog.at_level(logging.INFO, logger="corral.plugin.hello"):
        host.send_event("hello", "issue.updated", {"key": "OPS-1"}, source="webhook:jira", id="e1")
    assert any(
        r.name == "corral.plugin.hello" and "event" in r.getMessage() and "id=e1" in r.getMessage()
        for r in caplog.records
    )


def test_from_config_resolves_paths_relative_to_the_file(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    plugins = plugin_dir("hello")
    config = tmp_path / "conf" / "corral.yaml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump(
            {
                "plugin_dirs": [str(plugins)],
                "data_dir": "state",
                "cache_dir": str(compiled_cache_dir),
                "plugins": GRANT,
            }
        )
    )
    with PluginHost.from_config(config) as host:
        assert [(p.name, p.state) for p in host.load()] == [("hello", "loaded")]
        assert host.config.data_dir == tmp_path / "conf" / "state"
        assert host.call("hello", "echo", 7) == 7


def test_plugin_dirs_may_be_one_path_as_a_string(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    plugins = str(plugin_dir("hello"))  # not a sequence of one-letter directory names
    with PluginHost(
        plugins, data_dir=tmp_path / "data", cache_dir=compiled_cache_dir, plugins=GRANT
    ) as host:
        assert [info.state for info in host.load()] == ["loaded"]
        assert host.config.plugin_dirs == [Path(plugins)]
        assert host.call("hello", "echo", 1) == 1


def test_calls_before_load_and_after_close_say_so(make_host: HostFactory, tmp_path: Path) -> None:
    host = PluginHost([], data_dir=tmp_path / "data")
    with pytest.raises(HostNotReady, match=r"^no plugins are loaded yet: call host\.load\(\) "):
        host.call("hello", "echo")
    host.close()
    with pytest.raises(HostNotReady, match=r"^this PluginHost is closed; create a new one$"):
        host.load()
    loaded = make_host("hello", plugins=GRANT)
    loaded.close()
    with pytest.raises(HostNotReady, match="closed"):
        loaded.call("hello", "echo")
    with pytest.raises(HostNotReady, match="closed"):
        loaded.send_event("hello", "tick")


def test_settings_for_no_plugin_are_reported_with_a_close_name(
    make_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="corral.registry"):
        host = make_host("hello", plugins={**GRANT, "helo": {"grant": ["kv"]}, "zzz": {}})
    assert host.unmatched_settings() == [
        'PluginHost(plugins={"helo": ...}) names no plugin found in the plugin dirs; '
        'did you mean "hello"?',
        'PluginHost(plugins={"zzz": ...}) names no plugin found in the plugin dirs',
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "corral.registry"]
    assert logged == host.unmatched_settings()
    host.load()  # reported once, not at every discovery
    logged = [r.getMessage() for r in caplog.records if r.name == "corral.registry"]
    assert len(logged) == 2
