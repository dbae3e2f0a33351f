"""Discovery, verification, grants and the compiled cache, on real bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
import yaml
from wasmtime.component import Component

from conftest import copy_as
from corral import (
    Bundle,
    BundleError,
    ChecksumMismatch,
    ConfigError,
    PluginHost,
    PluginNotFound,
    PluginUnavailable,
)
from corral._cache import CompiledCache
from corral._errors import PermissionDenied
from corral._settings_origin import SettingsOrigin
from corral.bundle import sha256_hex
from corral.config import PluginSettings, default_cache_dir, load_host_config
from corral.permissions import PluginPermissions
from corral.runtime import Runtime

HostFactory = Callable[..., PluginHost]


def edit_manifest(bundle_dir: Path, **sections: dict[str, object]) -> None:
    path = bundle_dir / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data))


def test_checksum_tampering_is_rejected_before_compilation(plugin_dir: Callable[..., Path]) -> None:
    directory = plugin_dir("hello") / "hello"
    with (directory / "plugin.wasm").open("r+b") as wasm:
        wasm.seek(1000)
        byte = wasm.read(1)
        wasm.seek(1000)
        wasm.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumMismatch, match=r"checksum mismatch: manifest says sha256:"):
        Bundle.open(directory)


def test_missing_component_and_escaping_paths(
    plugin_dir: Callable[..., Path], tmp_path: Path
) -> None:
    directory = plugin_dir("hello") / "hello"
    (directory / "plugin.wasm").unlink()
    with pytest.raises(BundleError, match=r"component 'plugin.wasm' is missing"):
        Bundle.open(directory)
    outside = tmp_path / "outside.wasm"
    outside.write_bytes(b"\0asm")
    (directory / "plugin.wasm").symlink_to(outside)
    with pytest.raises(BundleError, match=r"resolves outside the bundle"):
        Bundle.open(directory)


def test_good_and_bad_bundles_load_side_by_side(
    make_host: HostFactory, plugin_dir: Callable[..., Path]
) -> None:
    directory = plugin_dir("hello", "misbehave")
    # a bundle with a bad manifest, one with a tampered component, one that is not a component
    broken = directory / "broken"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("schema_version: '1.0'\nplugin: {name: Bad}\n")
    tampered = copy_as(directory, "hello", "tampered")
    (tampered / "plugin.wasm").write_bytes(b"not the original")
    notwasm = directory / "notwasm"
    notwasm.mkdir()
    (notwasm / "plugin.wasm").write_bytes(b"\0asm garbage")
    shutil.copy(directory / "hello" / "manifest.yaml", notwasm / "manifest.yaml")
    edit_manifest(
        notwasm,
        plugin={"name": "notwasm"},
        security={"checksum": "sha256:" + sha256_hex(b"\0asm garbage")},
    )
    grant = {"grant": ["config.read"]}
    host = make_host(plugins={"hello": grant, "notwasm": grant})
    states = {(i.name, i.state): i.reason for i in host.plugins()}
    assert ("hello", "loaded") in states
    assert ("misbehave", "loaded") in states
    assert "plugin.name" in states[("broken", "failed")]
    assert "checksum mismatch" in states[("tampered", "failed")]
    assert "not a valid WebAssembly component" in states[("notwasm", "failed")]
    assert host.call("hello", "echo", [1, 2]) == [1, 2]
    with pytest.raises(PluginUnavailable, match="checksum mismatch"):
        host.call("tampered", "echo")
    with pytest.raises(PluginNotFound, match="no plugin named 'nope'"):
        host.call("nope", "echo")


def test_ungranted_permission_refuses_the_load_and_says_how_to_grant(
    make_host: HostFactory,
) -> None:
    host = make_host("hello")  # hello requests config.read; nothing granted
    (info,) = host.plugins()
    assert info.state == "failed"
    assert info.reason == (
        "plugin 'hello' requests permission \"config.read\", which the operator has not granted; "
        'grant it with PluginHost(plugins={"hello": {"grant": ["config.read"]}})'
    )


def test_grant_advice_keeps_what_the_operator_grants_already() -> None:
    origin = SettingsOrigin(Path("/srv/corral.yaml"))
    requested = frozenset({"kv", "config.read"})
    permissions = PluginPermissions("x", requested, frozenset({"config.read"}), origin)
    with pytest.raises(PermissionDenied) as caught:
        permissions.check_requested_are_granted()
    assert str(caught.value) == (
        "plugin 'x' requests permission \"kv\", which the operator has not granted; grant it "
        'with plugins.x.grant: ["config.read", "kv"] in /srv/corral.yaml'
    )
    # Requested and granted: nothing to say. The manifest's side alone: no grant advice.
    PluginPermissions("x", requested, requested, origin).check_requested_are_granted()
    denial = PluginPermissions("x", frozenset(), requested, origin).denial("kv.get", "kv")
    assert str(denial).endswith(
        'add "kv" to permissions: in the plugin\'s manifest.yaml and rebuild it'
    )


def test_load_failures_name_the_config_file_the_settings_came_from(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    config = tmp_path / "corral.yaml"
    settings = {"plugin_dirs": [str(plugin_dir("hello"))], "cache_dir": str(compiled_cache_dir)}
    config.write_text(yaml.safe_dump(settings))
    with PluginHost.from_config(config) as host:
        (info,) = host.load()
    assert info.state == "failed"
    assert info.reason.endswith(f'grant it with plugins.hello.grant: ["config.read"] in {config}')


def test_plugin_config_is_validated_against_the_manifest_schema(make_host: HostFactory) -> None:
    host = make_host(
        "hello", plugins={"hello": {"grant": ["config.read"], "config": {"greeting": 42}}}
    )
    (info,) = host.plugins()
    assert info.state == "failed"
    assert "plugins.hello.config.greeting: 42 is not of type 'string'" in info.reason


def test_disabled_plugin_is_listed_not_loaded(make_host: HostFactory) -> None:
    host = make_host("hello", plugins={"hello": {"enabled": False}})
    (info,) = host.plugins()
    assert (info.state, info.reason) == ("disabled", "disabled in config")


def test_compiled_cache_is_reused_and_survives_corruption(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    directory = plugin_dir("hello")
    settings = {"hello": {"grant": ["config.read"]}}

    def load(cache: Path) -> bool:
        with PluginHost(
            plugin_dirs=[directory], data_dir=tmp_path / "d", cache_dir=cache, plugins=settings
        ) as host:
            (info,) = host.load()
            assert host.call("hello", "echo", "ok") == "ok"
            return info.from_cache

    # hello compiled in the session cache (at most once a session), its entry copied from there
    load(compiled_cache_dir)
    sha = Bundle.open(directory / "hello").wasm_sha256
    metas = {path: json.loads(path.read_text()) for path in compiled_cache_dir.glob("*.json")}
    source = next(  # hello's entry for the engine that does not meter fuel (it has no budget)
        path.with_suffix(".cwasm")
        for path, meta in metas.items()
        if meta["wasm_sha256"] == sha and "fuel=0;" in meta["engine"]
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    for path in (source, source.with_suffix(".json")):
        shutil.copy2(path, cache / path.name)
    entry = cache / source.name
    assert load(cache) is True
    # corrupt one byte in the middle: detected by the recorded hash, recompiled, rewritten
    with entry.open("r+b") as file:
        file.seek(os.path.getsize(entry) // 2)
        file.write(b"\xff\xff\xff\xff")
    assert load(cache) is False
    assert load(cache) is True
    # truncate it: same
    with entry.open("r+b") as file:
        file.truncate(1000)
    assert load(cache) is False
    assert load(cache) is True


def test_host_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plugins.hello.grant: \"net.all\" is not a permission"):
        PluginHost(plugins={"hello": {"grant": ["net.all"]}})
    with pytest.raises(
        ConfigError,
        match=r'^PluginHost: plugins.hello.grants: unknown key; did you mean "grant"\? \(known: '
        r"enabled, grant, config, limits, pin, webhooks, schedule, log, http, credentials, ",
    ):
        PluginHost(plugins={"hello": {"grants": ["kv"]}})
    with pytest.raises(ConfigError, match=r"defaults.memory_limit: \"lots\" is not a size"):
        PluginHost(defaults={"memory_limit": "lots"})
    # Plugin names that look like the validator steps pydantic puts in a location stay named.
    for name in ("function-runner", "constrained-int-check"):
        with pytest.raises(ConfigError, match=rf"plugins.{name}.grant: \"x\" is not a permission"):
            PluginHost(plugins={name: {"grant": ["x"]}})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"http": {"timeuot": 3}}, 'plugins.p.http.timeuot: unknown key; did you mean "timeout"'),
        ({"http": {"timeout": "soon"}}, 'plugins.p.http.timeout: "soon" is not a duration'),
        ({"credentials": {"hosts": []}}, "plugins.p.credentials: Input should be a valid list"),
        ({"credentials": [{"hosts": ["https://a.test"], "scheme": "basic", "secret": "env:S"}]},
         'plugins.p.credentials[0]: scheme "basic" needs a username'),
        ({"log": {"level": "loud"}}, "plugins.p.log.level: Input should be 'trace'"),
        ({"kv": {"max_total": "0B"}}, 'plugins.p.kv.max_total: "0B" must be larger than zero'),
        ({"tasks": {"max_batch_items": 0}}, "plugins.p.tasks.max_batch_items: Input should be"),
    ],
)  # fmt: skip
def test_capability_options_are_validated_with_the_config_file(
    tmp_path: Path, settings: dict[str, object], message: str
) -> None:
    # For a plugin no bundle provides: nothing is loaded, and the file is still refused whole.
    config = tmp_path / "corral.yaml"
    config.write_text(yaml.safe_dump({"plugins": {"p": settings}}))
    with pytest.raises(ConfigError) as caught:
        load_host_config(config)
    assert str(caught.value).startswith(f"{config}: {message}")
    assert "\n" not in str(caught.value)


def test_a_component_that_cannot_instantiate_fails_at_load(make_host: HostFactory) -> None:
    # componentize-py components need about 16 MiB of linear memory to start
    host = make_host("misbehave", plugins={"misbehave": {"limits": {"memory_limit": "2MB"}}})
    (info,) = host.plugins()
    assert info.state == "failed"
    assert info.reason.startswith("plugin 'misbehave' trapped: memory limit (needs 12.4 MiB")
    assert info.reason.endswith("its memory_limit is 2 MiB)")
    with pytest.raises(PluginUnavailable):
        host.call("misbehave", "count", {"n": 1})


def test_reloading_keeps_running_calls_and_swaps_whole(make_host: HostFactory) -> None:
    host = make_host("misbehave")
    outcome: dict[str, object] = {}

    def spin() -> None:
        outcome["spin"] = host.call("misbehave", "spin", {"seconds": 0.5})

    worker = threading.Thread(target=spin)
    worker.start()
    time.sleep(0.1)
    infos = host.load()  # while the call above is running on the old instance
    worker.join()
    assert [i.state for i in infos] == ["loaded"]
    assert isinstance(outcome["spin"], int) and outcome["spin"] > 0
    assert host.call("misbehave", "count", {"n": 4}) == 6


# -- refresh: per-plugin reload -----------------------------------------------------------------


def test_refresh_touches_only_what_changed(make_host: HostFactory) -> None:
    grant = {"hello": {"grant": ["config.read"], "config": {"greeting": "Hi"}}}
    host = make_host("hello", "misbehave", plugins=grant)
    before = {info.name: info for info in host.plugins()}
    plugins_dir = host.config.plugin_dirs[0]

    assert host.refresh() == host.plugins()  # nothing changed: nothing reloaded
    assert {i.name: i.loaded_at for i in host.plugins()} == {
        name: info.loaded_at for name, info in before.items()
    }

    changed = PluginSettings(grant=["config.read"], config={"greeting": "Yo"})
    config = host.config.model_copy(update={"plugins": {"hello": changed}})
    host.refresh(config)
    after = {info.name: info for info in host.plugins()}
    assert after["misbehave"].loaded_at == before["misbehave"].loaded_at
    assert after["hello"].loaded_at != before["hello"].loaded_at
    assert "Yo" in str(host.call("hello", "greet", {"name": "Ada"}))

    shutil.rmtree(plugins_dir / "misbehave")
    host.refresh()
    with pytest.raises(PluginNotFound):
        host.call("misbehave", "count", {"n": 2})


def test_refresh_refuses_what_needs_a_restart_and_changes_nothing(
    make_host: HostFactory, tmp_path: Path
) -> None:
    host = make_host("misbehave")
    running = host.config
    with pytest.raises(ConfigError, match="data_dir changed; restart"):
        host.refresh(running.model_copy(update={"data_dir": tmp_path / "elsewhere"}))
    with pytest.raises(ConfigError, match="does not exist"):
        host.refresh(running.model_copy(update={"plugin_dirs": [tmp_path / "missing"]}))
    assert host.config is running
    assert host.call("misbehave", "count", {"n": 3}) == 3
    host.refresh()  # the running config still works


def test_compiled_cache_is_per_user_not_per_data_dir(
    tmp_path: Path,
    plugin_dir: Callable[..., Path],
    compiled_cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "user-cache"
    shutil.copytree(compiled_cache_dir, cache)  # a machine where hello was compiled once
    monkeypatch.setenv("CORRAL_CACHE_DIR", str(cache))
    directory = plugin_dir("hello")
    for data_dir in (tmp_path / "first", tmp_path / "second"):
        settings = {"hello": {"grant": ["config.read"]}}
        with PluginHost(plugin_dirs=[directory], data_dir=data_dir, plugins=settings) as host:
            (info,) = host.load()
        assert (info.state, info.from_cache) == ("loaded", True)
        assert not list(data_dir.rglob("*.cwasm"))


def test_default_cache_dir_is_the_platform_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRAL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "corral" / "compiled"
    if sys.platform == "linux":
        assert default_cache_dir() == expected
    assert PluginHost(data_dir=tmp_path / "d").config.compiled_cache_dir == default_cache_dir()
    explicit = PluginHost(data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert explicit.config.compiled_cache_dir == tmp_path / "c"


_LOAD_HELLO = """
import sys
from pathlib import Path
from corral import PluginHost
plugins, data, cache = map(Path, sys.argv[1:4])
settings = {"hello": {"grant": ["config.read"]}}
with PluginHost(plugin_dirs=[plugins], data_dir=data, cache_dir=cache, plugins=settings) as host:
    (info,) = host.load()
print(info.state, info.from_cache)
"""


def test_two_processes_sharing_an_empty_cache_compile_once(
    tmp_path: Path, plugin_dir: Callable[..., Path]
) -> None:
    directory, cache = plugin_dir("hello"), tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _LOAD_HELLO, *map(str, (directory, tmp_path / f"d{i}", cache))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    # one compiled and wrote the entry; the other waited for it and read it back
    assert sorted(out.strip() for out, _ in outputs) == ["loaded False", "loaded True"], outputs
    assert len(list(cache.glob("*.cwasm"))) == 1


# -- the compiled cache's size -------------------------------------------------------------------


def _small_component(runtime: Runtime) -> Component:
    wat = (Path(__file__).parent / "components" / "earlier-patch.wat").read_text()
    return runtime.compile(wasmtime.wat2wasm(wat), False)


def test_the_compiled_cache_keeps_the_most_recently_used_entries_within_its_size(
    tmp_path: Path,
) -> None:
    with Runtime() as runtime:
        component = _small_component(runtime)
        entry_size = len(component.serialize())
        cache = CompiledCache(
            tmp_path, runtime.engine(False), "test", max_bytes=int(entry_size * 3.5)
        )
        compiles: list[str] = []

        def load(key: str) -> bool:
            def compile_() -> Component:
                compiles.append(key)
                return component

            return cache.load(key, compile_)[1]

        for key in "abc":
            assert load(key) is False
        assert all(cache.has(key) for key in "abc")
        time.sleep(0.05)  # mtimes apart
        assert load("a") is True  # a hit marks "a" as used: "b" is now the least recent
        time.sleep(0.05)
        assert load("d") is False
        assert [key for key in "abcd" if cache.has(key)] == ["a", "c", "d"]
        assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= entry_size * 3.5
        assert load("b") is False and compiles == ["a", "b", "c", "d", "b"]  # compiled again


def test_pruning_the_compiled_cache_removes_what_crashed_writes_left(tmp_path: Path) -> None:
    with Runtime() as runtime:
        cache = CompiledCache(tmp_path, runtime.engine(False), "test", max_bytes=1 << 30)
        cache.load("kept", lambda: _small_component(runtime))
        old, recent = time.time() - 7200, time.time()
        a, b = "a" * 40, "b" * 40
        leftovers = {
            f".{a}.cwasm.x1.tmp": old,  # a write that died
            f"{b}.cwasm": old,  # an artifact whose metadata was never written
            f"{b}.lock": old,  # and its lock
            f".{b}.json.x2.tmp": recent,  # a write in progress elsewhere
            f"{a}.cwasm": recent,
            "notes.json": old,  # not the cache's: the dir may be shared
            "old.tmp": old,
        }
        for name, mtime in leftovers.items():
            (tmp_path / name).write_bytes(b"x")
            os.utime(tmp_path / name, (mtime, mtime))
        cache.prune()
        left = {p.name for p in tmp_path.iterdir()}
        assert {f".{b}.json.x2.tmp", f"{a}.cwasm", "notes.json", "old.tmp"} <= left
        assert not {f".{a}.cwasm.x1.tmp", f"{b}.cwasm", f"{b}.lock"} & left
        assert cache.has("kept")


def test_the_compiled_cache_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache_max_size"):
        PluginHost(plugin_dirs=[tmp_path], data_dir=tmp_path / "d", cache_max_size="0")
