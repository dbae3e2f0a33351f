"""Hostile bundles: each can fail only itself, quickly, and the host never fetches for it.

Every test lays out the real `hello` bundle (the good one) beside hostile bundles built here, and
loads them through `PluginHost` as an operator would.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import referencing.exceptions
import yaml

import corral.cli
from conftest import copy_as
from corral import (
    ConfigError,
    ManifestError,
    PluginHost,
    PluginInfo,
    PluginUnavailable,
    load_manifest,
)
from corral._json_schema import MAX_SCHEMA_NODES, check_schema, offline_validator
from corral.bundle import sha256_hex
from corral.cli import main
from corral.config import load_host_config

HostFactory = Callable[..., PluginHost]
GRANT = {"hello": {"grant": ["config.read"]}}


def hostile(plugins: Path, name: str, *, wasm: bytes | None = None, **sections: Any) -> Path:
    """A copy of hello named `name`: `wasm` replaces its component (checksum updated to match),
    `sections` replace manifest sections."""
    bundle = copy_as(plugins, "hello", name)
    manifest = yaml.safe_load((bundle / "manifest.yaml").read_text())
    if wasm is not None:
        (bundle / "plugin.wasm").write_bytes(wasm)
        manifest["security"]["checksum"] = "sha256:" + sha256_hex(wasm)
    manifest.update(sections)
    (bundle / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return bundle


def write_manifest(directory: Path, text: str | None = None, **sections: Any) -> Path:
    """A valid manifest (or `text`) at directory/manifest.yaml, `sections` replaced."""
    manifest: dict[str, Any] = {
        "schema_version": "1.0",
        "plugin": {"name": "probe", "version": "1.0.0"},
        "security": {"checksum": "sha256:" + "ab" * 32},
        **sections,
    }
    path = directory / "manifest.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(manifest))
    return path


def load_in_thread(host: PluginHost, seconds: float = 60) -> list[PluginInfo]:
    """host.load(), failing the test (instead of hanging the suite) if it blocks."""
    result: list[list[PluginInfo]] = []
    worker = threading.Thread(target=lambda: result.append(host.load()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"load() still running after {seconds}s"
    return result[0]


def states(infos: list[PluginInfo]) -> dict[str, tuple[str, str]]:
    return {
        info.directory.name if info.directory else info.name: (info.state, info.reason)
        for info in infos
    }


def assert_only_good_loaded(infos: list[PluginInfo], *bad: str) -> dict[str, str]:
    """hello loaded, each `bad` bundle failed with a one-line reason; returns the reasons."""
    by_dir = states(infos)
    assert by_dir["hello"] == ("loaded", "")
    reasons = {}
    for name in bad:
        state, reason = by_dir[name]
        assert state == "failed", (name, reason)
        assert reason and "\n" not in reason, (name, reason)
        reasons[name] = reason
    return reasons


@pytest.fixture
def plugins(plugin_dir: Callable[..., Path]) -> Path:
    return plugin_dir("hello")


# -- 1. the host never fetches or reads anything for a bundle --------------------------------


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 recording every request path it receives."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_remote_and_file_refs_are_refused_at_load_without_any_request(
    plugins: Path, make_host: HostFactory, loopback_server: tuple[str, list[str]]
) -> None:
    url, received = loopback_server
    schema = {"type": "object", "properties": {"x": {"$ref": f"{url}/x.json"}}}
    hostile(plugins, "remote", config_schema=schema)
    hostile(plugins, "devzero", config_schema={"$ref": "file:///dev/zero"})
    hostile(plugins, "relative", config_schema={"$ref": "other.json#/x"})
    settings = {**GRANT, **{n: {"config": {"x": "y"}} for n in ("remote", "devzero", "relative")}}
    reasons = assert_only_good_loaded(
        make_host(plugins=settings).plugins(), "remote", "devzero", "relative"
    )
    assert reasons["remote"].endswith(
        f"manifest.yaml: config_schema.properties.x.$ref: remote references are not allowed "
        f"('{url}/x.json'; only \"#/...\" is)"
    )
    assert "config_schema.$ref: remote references are not allowed" in reasons["devzero"]
    assert "config_schema.$ref: remote references are not allowed" in reasons["relative"]
    assert received == []


def test_the_config_validator_itself_never_retrieves(
    loopback_server: tuple[str, list[str]],
) -> None:
    # Defence in depth: even a schema that skipped the manifest checks resolves only locally.
    url, received = loopback_server
    validator = offline_validator({"properties": {"x": {"$ref": f"{url}/x.json"}}})
    with pytest.raises(referencing.exceptions.Unresolvable):
        list(validator.iter_errors({"x": 1}))
    local = offline_validator({"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s"})
    assert [e.message for e in local.iter_errors(1)] == ["1 is not of type 'string'"]
    assert received == []


@pytest.mark.parametrize(
    ("schema", "where", "problem"),
    [
        ({"$ref": "#/$defs/missing"}, "config_schema.$ref", "points to nothing"),
        ({"$ref": "#anchor"}, "config_schema.$ref", "is not a JSON pointer"),
        (
            {"$defs": {"a": {"$id": "http://127.0.0.1:9/a"}}},
            "config_schema.$defs.a.$id",
            "only at the top",
        ),
        ({"$dynamicRef": "#meta"}, "config_schema.$dynamicRef", "is not supported"),
        ({"$schema": "http://127.0.0.1:9/dialect"}, "config_schema.$schema", "not a known dialect"),
    ],
)
def test_references_that_could_leave_the_schema_are_refused(
    tmp_path: Path, schema: dict[str, Any], where: str, problem: str
) -> None:
    path = write_manifest(tmp_path, config_schema=schema)
    with pytest.raises(ManifestError, match=rf"manifest.yaml: {re.escape(where)}: .*{problem}"):
        load_manifest(path)


# -- 2. a bundle can fail only itself, quickly ------------------------------------------------


def test_deep_yaml_and_alias_bombs_are_one_line_manifest_errors(
    plugins: Path, make_host: HostFactory
) -> None:
    deep = copy_as(plugins, "hello", "deep")
    text = (deep / "manifest.yaml").read_text()
    (deep / "manifest.yaml").write_text(text + "extra: " + "[" * 2000 + "]" * 2000 + "\n")
    laughs = copy_as(plugins, "hello", "laughs")
    bomb = ["lol0: &lol0 [lol]"] + [
        f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(1, 10)
    ]
    text = (laughs / "manifest.yaml").read_text()
    text = text.replace("config_schema:\n", "config_schema:\n  $comment: [*lol9]\n")
    (laughs / "manifest.yaml").write_text("\n".join(bomb) + "\n" + text)
    loop = copy_as(plugins, "hello", "loop")
    (loop / "manifest.yaml").write_text("a: &a [*a]\n" + text)
    reasons = assert_only_good_loaded(
        load_in_thread(make_host(plugins=GRANT)), "deep", "laughs", "loop"
    )
    assert reasons["deep"].endswith("nested deeper than 100 levels")
    assert reasons["laughs"].endswith("stands for more than 100000 nodes (aliases expanded)")
    assert reasons["loop"].endswith("recursive or undefined alias")


def test_fifos_and_directories_fail_their_bundle_at_once(
    plugins: Path, make_host: HostFactory
) -> None:
    replaced = {
        "wasm-fifo": ("plugin.wasm", os.mkfifo, "a FIFO"),
        "manifest-fifo": ("manifest.yaml", os.mkfifo, "a FIFO"),
        "wasm-dir": ("plugin.wasm", os.mkdir, "a directory"),
        "manifest-dir": ("manifest.yaml", os.mkdir, "a directory"),
    }
    for bundle, (filename, make, _) in replaced.items():
        path = copy_as(plugins, "hello", bundle) / filename
        path.unlink()
        make(path)
    reasons = assert_only_good_loaded(
        load_in_thread(make_host(plugins=GRANT), seconds=30), *replaced
    )
    for bundle, (filename, _, kind) in replaced.items():
        assert reasons[bundle].endswith(f"{filename}: is {kind}, not a regular file")


def test_manifest_symlinked_out_of_the_bundle_is_refused(
    plugins: Path, make_host: HostFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    escape = copy_as(plugins, "hello", "escape")
    shutil.move(escape / "manifest.yaml", outside / "manifest.yaml")
    (escape / "manifest.yaml").symlink_to(outside / "manifest.yaml")
    reasons = assert_only_good_loaded(make_host(plugins=GRANT).plugins(), "escape")
    assert reasons["escape"].endswith("manifest.yaml: 'manifest.yaml' resolves outside the bundle")


def test_sizes_are_capped_by_stat_before_reading(
    plugins: Path, make_host: HostFactory, tmp_path: Path, compiled_cache_dir: Path
) -> None:
    sparse = copy_as(plugins, "hello", "sparse")
    os.truncate(sparse / "plugin.wasm", 2 << 30)  # 2 GiB, no disk blocks
    huge_manifest = copy_as(plugins, "hello", "huge-manifest")
    with (huge_manifest / "manifest.yaml").open("a") as manifest:
        # 50 KB past the cap, whatever the manifest's own size: "1.0 MiB" in the message
        padding = (1 << 20) + 50_000 - manifest.tell()
        manifest.write("# padding\n" * (padding // 10))
    reasons = assert_only_good_loaded(make_host(plugins=GRANT).plugins(), "sparse", "huge-manifest")
    assert reasons["sparse"].endswith(
        "plugin.wasm: is 2 GiB (2,147,483,648 bytes), larger than the 256 MiB allowed "
        "(raise bundles.max_component_size)"
    )
    size = (huge_manifest / "manifest.yaml").stat().st_size
    expected = f"manifest.yaml: is 1.0 MiB ({size:,} bytes), larger than the 1 MiB allowed"
    assert expected in reasons["huge-manifest"]
    # the operator sets the caps: here hello's own 18 MB component is over
    with PluginHost(
        plugin_dirs=[plugins],
        data_dir=tmp_path / "data",
        cache_dir=compiled_cache_dir,
        plugins=GRANT,
        max_component_size="1MB",
        max_manifest_size="64KB",
    ) as host:
        infos = {i.directory.name: i for i in host.load() if i.directory}
        assert infos["hello"].state == "failed"
        assert "larger than the 1 MiB allowed (raise bundles.max_component_size)" in (
            infos["hello"].reason
        )


def test_only_binary_components_are_compiled(plugins: Path, make_host: HostFactory) -> None:
    hostile(plugins, "wat-text", wasm=b"(component (core module))")
    hostile(plugins, "core-module", wasm=b"\0asm\x01\x00\x00\x00")
    reasons = assert_only_good_loaded(make_host(plugins=GRANT).plugins(), "wat-text", "core-module")
    assert (
        "plugin.wasm: not a WebAssembly binary (the text format is not accepted"
        in (reasons["wat-text"])
    )
    assert "plugin.wasm: a core module, not a component" in reasons["core-module"]


def doubling_chain(levels: int) -> dict[str, Any]:
    """$defs where each level refers twice to the next: 2**levels schemas to validate."""
    defs: dict[str, Any] = {f"d{levels}": {"type": "string"}}
    for i in range(levels):
        defs[f"d{i}"] = {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
    return {"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs}


def test_costly_config_schemas_are_refused_before_validation(
    plugins: Path, make_host: HostFactory
) -> None:
    hostile(plugins, "doubling", config_schema=doubling_chain(16))
    hostile(plugins, "itself", config_schema={"properties": {"x": {"$ref": "#"}}})
    chain = {f"c{i}": {"$ref": f"#/$defs/c{i + 1}"} for i in range(100)}
    hostile(
        plugins, "long-chain", config_schema={"$defs": {**chain, "c100": {}}, "$ref": "#/$defs/c0"}
    )
    hostile(plugins, "wide", config_schema={"enum": list(range(MAX_SCHEMA_NODES + 1))})
    # no $ref at all: each level makes jsonschema evaluate the one below twice (~100 s at 30)
    unevaluated: dict[str, Any] = {"type": "object"}
    for _ in range(30):
        unevaluated = {"anyOf": [unevaluated], "unevaluatedProperties": False}
    hostile(plugins, "unevaluated", config_schema=unevaluated)
    settings = {**GRANT, **{n: {"config": {"x": "y"}} for n in ("doubling", "itself")}}
    reasons = assert_only_good_loaded(
        load_in_thread(make_host(plugins=settings), seconds=30),
        "doubling",
        "itself",
        "long-chain",
        "wide",
        "unevaluated",
    )
    assert (
        f"stands for more than {MAX_SCHEMA_NODES} values with references expanded"
        in (reasons["doubling"])
    )
    assert "config_schema.properties.x.$ref: '#' refers back to itself" in reasons["itself"]
    assert "nested deeper than 64 levels with references expanded" in reasons["long-chain"]
    assert f"config_schema: has more than {MAX_SCHEMA_NODES} values" in reasons["wide"]
    assert f"stands for more than {MAX_SCHEMA_NODES} values" in reasons["unevaluated"]
    # a chain within the budget is accepted and validates the operator's config as before
    check_schema(doubling_chain(8))
    errors = list(offline_validator(doubling_chain(8)).iter_errors({"x": 1}))
    assert {e.message for e in errors} == {"1 is not of type 'string'"} and len(errors) == 2**8


def test_an_exception_nobody_expected_fails_only_its_bundle(
    plugins: Path, make_host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import corral.bundle
    import corral.registry

    copy_as(plugins, "hello", "open-bug")
    copy_as(plugins, "hello", "load-bug")
    real_parse_manifest, real_check = corral.bundle.parse_manifest, corral.registry.check_contract

    def parse_manifest(data: bytes, path: Path) -> Any:
        if path.parent.name == "open-bug":
            raise RecursionError("maximum recursion depth exceeded")
        return real_parse_manifest(data, path)

    def check_contract(component: Any, engine: Any, bundle: Any) -> None:
        if bundle.name == "load-bug":
            raise RuntimeError("something\nspanning lines")
        real_check(component, engine, bundle)

    monkeypatch.setattr(corral.bundle, "parse_manifest", parse_manifest)
    monkeypatch.setattr(corral.registry, "check_contract", check_contract)
    settings = {**GRANT, "load-bug": {"grant": ["config.read"]}}
    reasons = assert_only_good_loaded(make_host(plugins=settings).plugins(), "open-bug", "load-bug")
    assert reasons["open-bug"].endswith(
        "open-bug: unexpected RecursionError: maximum recursion depth exceeded"
    )
    assert reasons["load-bug"] == "unexpected RuntimeError: something"


def test_cli_reports_hostile_bundles_without_a_traceback(
    plugins: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile(plugins, "core-module", wasm=b"\0asm\x01\x00\x00\x00")
    deep = copy_as(plugins, "hello", "deep")
    (deep / "manifest.yaml").write_text("a: " + "[" * 2000 + "]" * 2000 + "\n")
    fifo = copy_as(plugins, "hello", "fifo")
    (fifo / "plugin.wasm").unlink()
    os.mkfifo(fifo / "plugin.wasm")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "corral.cli", "plugins", "list"),
            *("--plugins-dir", str(plugins), "--data-dir", str(plugins.parent / "data")),
        ],
        cwd=plugins.parent,
        env={**os.environ, "PYTHONPATH": str(Path(corral.__file__).parent.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr == ""
    listed = dict(line.split(maxsplit=1) for line in done.stdout.splitlines())
    assert "a core module, not a component" in listed["core-module"]
    assert "nested deeper than 100 levels" in listed["deep"]
    assert "is a FIFO, not a regular file" in listed["fifo"]

    def broken(args: Any) -> int:
        raise RuntimeError("a bug\nwith details")

    monkeypatch.setattr(corral.cli, "cmd_plugins_list", broken)
    monkeypatch.chdir(plugins.parent)
    assert main(["plugins", "list"]) == 1
    err = capsys.readouterr().err
    assert err == "corral: unexpected RuntimeError: a bug (--debug shows the traceback)\n"
    assert main(["--debug", "plugins", "list"]) == 1
    assert "Traceback" in capsys.readouterr().err


# -- 6. names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("plugin", "name", "good\n"),
        ("plugin", "version", "1.0.0\n"),
        ("security", "checksum", "sha256:" + "ab" * 32 + "\n"),
    ],
)
def test_a_trailing_newline_is_not_a_match(
    tmp_path: Path, section: str, field: str, value: str
) -> None:
    sections = {
        "plugin": {"name": "probe", "version": "1.0.0"},
        "security": {"checksum": "sha256:" + "ab" * 32},
    }
    sections[section][field] = value
    with pytest.raises(ManifestError, match=rf"{section}\.{field}: "):
        load_manifest(write_manifest(tmp_path, **sections))


def test_a_name_with_a_newline_cannot_load_beside_the_real_one(
    plugins: Path, make_host: HostFactory
) -> None:
    twin = copy_as(plugins, "hello", "twin")
    manifest = yaml.safe_load((twin / "manifest.yaml").read_text())
    manifest["plugin"]["name"] = "hello\n"
    (twin / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    reasons = assert_only_good_loaded(make_host(plugins=GRANT).plugins(), "twin")
    assert 'plugin.name: "hello\\n" is not a plugin name' in reasons["twin"]


def host_over(tmp_path: Path, cache: Path, dirs: list[Path], **settings: Any) -> PluginHost:
    return PluginHost(
        plugin_dirs=dirs,
        data_dir=tmp_path / "data",
        cache_dir=cache,
        plugins={"hello": {"grant": ["config.read"], **settings}},
    )


def test_a_name_clash_without_a_pin_loads_neither(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    first, second = plugin_dir("hello", into="first"), plugin_dir("hello", into="second")
    with host_over(tmp_path, compiled_cache_dir, [first, second]) as host:
        infos = host.load()
        assert [(i.name, i.state) for i in infos] == [("hello", "failed")] * 2
        by_dir = {i.directory: i.reason for i in infos}
        assert str(second / "hello") in by_dir[first / "hello"]
        assert str(first / "hello") in by_dir[second / "hello"]
        for reason in by_dir.values():
            assert "none of them is loaded: pin the name to one plugin dir with " in reason
            assert reason.endswith('PluginHost(plugins={"hello": {"pin": {"plugin_dir": ...}}})')
        with pytest.raises(PluginUnavailable, match="is also claimed by"):
            host.call("hello", "echo", 1)


def test_a_pin_decides_who_gets_the_name(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    first, second = plugin_dir("hello", into="first"), plugin_dir("hello", into="second")
    pin = {"plugin_dir": str(second)}
    with host_over(tmp_path, compiled_cache_dir, [first, second], pin=pin) as host:
        infos = {i.directory: i for i in host.load()}
        assert infos[second / "hello"].state == "loaded"
        assert infos[first / "hello"].state == "failed"
        assert infos[first / "hello"].reason == (
            f"plugin name 'hello' is pinned to {second} (plugins.hello.pin.plugin_dir)"
        )
        assert host.call("hello", "echo", [1]) == [1]
        # a pinned name is refused to a bundle elsewhere even when it is the only claimant
        shutil.rmtree(second / "hello")
        (info,) = host.load()
        assert (info.directory, info.state) == (first / "hello", "failed")


def test_a_pin_cannot_decide_within_one_dir_and_must_name_a_plugin_dir(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    plugins = plugin_dir("hello")
    shutil.copytree(plugins / "hello", plugins / "hello-again")
    pin = {"plugin_dir": str(plugins)}
    with host_over(tmp_path, compiled_cache_dir, [plugins], pin=pin) as host:
        infos = host.load()
        assert [i.state for i in infos] == ["failed", "failed"]
        assert "keep one bundle named 'hello' per plugin dir" in infos[0].reason
    elsewhere = {"plugin_dir": str(tmp_path / "elsewhere")}
    with (
        host_over(tmp_path, compiled_cache_dir, [plugins], pin=elsewhere) as host,
        pytest.raises(ConfigError, match=r"plugins.hello.pin.plugin_dir: .* not one of"),
    ):
        host.load()


def test_a_pin_in_corral_yaml_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "vendor").mkdir()
    config = tmp_path / "corral.yaml"
    config.write_text(
        "plugin_dirs: [plugins, vendor]\n"
        "bundles: {max_manifest_size: 64KB}\n"
        "plugins:\n  jira-sync: {pin: {plugin_dir: vendor}}\n"
    )
    loaded = load_host_config(config)
    pin = loaded.settings_for("jira-sync").pin
    assert pin is not None and pin.plugin_dir == tmp_path / "vendor"
    assert loaded.bundles.limits().max_manifest_bytes == 64 << 10
    config.write_text("plugins:\n  jira-sync: {pin: {plugin_dir: vendor, signer: me}}\n")
    with pytest.raises(ConfigError, match=r"pin.signer: 'me' is not in trust.keys"):
        load_host_config(config)
