"""Components from any toolchain: `corral build --wasm`, and the world check at load time.

The corpus in tests/components/ is component-model text, turned into binaries here, so every
refused component can be read and rebuilt.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from corral import PluginHost
from corral._errors import BuildError
from corral.build import bundle_component
from corral.bundle import Bundle
from corral.cli import main

CORPUS = Path(__file__).parent / "components"
REFUSALS = {
    "no-handler": "does not export corral:plugin/handler@0.1.1 or an earlier 0.1.x; see "
    "plugin-sdk/wit",
    "other-handler-version": "(it exports corral:plugin/handler@0.2.0)",
    "no-on-event": "corral:plugin/handler@0.1.0 lacks on-event",
    "wrong-signature": "corral:plugin/handler@0.1.0#invoke is func(u32) -> u32, "
    "expected func(string, string) -> result<string, plugin-error>",
    "imports-wasi-http": "imports wasi:http/types@0.2.0: this host does not provide that WASI",
    "imports-unknown-interface": "imports corral:plugin/secrets@0.1.0: corral:plugin has no such "
    "interface (it has config, http, kv, log, tasks, types)",
    "imports-newer-corral": "imports corral:plugin/log@0.2.0: this host provides "
    "corral:plugin/log@0.1.1",
    "imports-wasi-preview": "imports wasi:cli/environment@0.2.0-rc-2023-11-10: this host provides "
    "wasi:cli/environment in WASI 0.2.x only",
}
MANIFEST = """\
schema_version: "1.0"
plugin:
  name: {name}
  version: 1.0.0
  description: built elsewhere
security:
  permissions: []
  # filled by corral build --wasm
  checksum: ""
"""


def new_bundle_dir(parent: Path, name: str) -> Path:
    directory = parent / name
    directory.mkdir(parents=True)
    (directory / "manifest.yaml").write_text(MANIFEST.format(name=name))
    return directory


def compiled_wat(name: str, into: Path) -> Path:
    path = into / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm((CORPUS / f"{name}.wat").read_text()))
    return path


def test_the_corpus_is_the_one_the_tests_expect() -> None:
    assert {p.stem for p in CORPUS.glob("*.wat")} == {*REFUSALS, "core-module", "earlier-patch"}


def test_a_component_built_against_an_earlier_patch_of_the_contract_runs(
    tmp_path: Path, compiled_cache_dir: Path
) -> None:
    """0.1.1 only added functions: a 0.1.0 component (exporting handler@0.1.0) loads and runs."""
    plugins = tmp_path / "plugins"
    bundle_component(compiled_wat("earlier-patch", tmp_path), new_bundle_dir(plugins, "older"))
    with PluginHost([plugins], data_dir=tmp_path / "data", cache_dir=compiled_cache_dir) as host:
        (info,) = host.load()
        assert (info.state, info.reason) == ("loaded", "")
        assert host.call("older", "echo", {"a": [1, "two"]}) == {"a": [1, "two"]}


def test_each_mismatched_component_fails_to_load_naming_what_is_wrong(
    tmp_path: Path, compiled_cache_dir: Path
) -> None:
    plugins = tmp_path / "plugins"
    for name in REFUSALS:
        bundle_component(compiled_wat(name, tmp_path), new_bundle_dir(plugins, name))
    with PluginHost([plugins], data_dir=tmp_path / "data", cache_dir=compiled_cache_dir) as host:
        infos = {info.name: info for info in host.load()}
    assert set(infos) == set(REFUSALS)
    for name, expected in REFUSALS.items():
        info = infos[name]
        assert info.state == "failed", name
        assert info.reason.startswith(f"plugin.wasm of plugin {name!r}"), info.reason
        assert expected in info.reason and "\n" not in info.reason, info.reason


def test_a_core_module_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    directory = new_bundle_dir(tmp_path, "core")
    before = (directory / "manifest.yaml").read_text()
    with pytest.raises(BuildError, match="a core module, not a component"):
        bundle_component(compiled_wat("core-module", tmp_path), directory)
    assert sorted(p.name for p in directory.iterdir()) == ["manifest.yaml"]
    assert (directory / "manifest.yaml").read_text() == before


def test_a_component_from_elsewhere_is_bundled_loaded_and_called(
    tmp_path: Path,
    bundles: dict[str, Bundle],
    compiled_cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The hello component stands in for one built by another toolchain: only its bytes count."""
    component = tmp_path / "elsewhere" / "echo.wasm"
    component.parent.mkdir()
    shutil.copy(bundles["hello"].wasm_path, component)
    directory = new_bundle_dir(tmp_path / "plugins", "echo")
    assert main(["build", "--wasm", str(component), str(directory)]) == 0
    assert f"checksum sha256:{bundles['hello'].wasm_sha256}" in capsys.readouterr().out
    manifest = (directory / "manifest.yaml").read_text()
    assert "# filled by corral build --wasm" in manifest  # the author's layout is kept
    assert (directory / "plugin.wasm").read_bytes() == component.read_bytes()
    with PluginHost(
        [directory.parent], data_dir=tmp_path / "data", cache_dir=compiled_cache_dir
    ) as host:
        (info,) = host.load()
        assert info.state == "loaded", info.reason
        assert host.call("echo", "echo", {"x": 1}) == {"x": 1}


@pytest.mark.parametrize(
    ("prepare", "args", "code", "message"),
    [
        (lambda d: (d / "manifest.yaml").unlink(), [], 1, "no manifest.yaml"),
        (
            lambda d: (d / "manifest.yaml").write_text(MANIFEST.format(name="Bad Name")),
            [],
            1,
            "is not a plugin name",
        ),
        (lambda d: None, ["--out", "elsewhere"], 2, "drop --out"),
    ],
)
def test_build_wasm_refuses_bad_input_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    prepare: Callable[[Path], object],
    args: list[str],
    code: int,
    message: str,
) -> None:
    directory = new_bundle_dir(tmp_path, "thing")
    prepare(directory)
    component = compiled_wat("no-handler", tmp_path)
    assert main(["build", "--wasm", str(component), str(directory), *args]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (directory / "plugin.wasm").exists()
