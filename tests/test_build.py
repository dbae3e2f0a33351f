"""`corral build`: the checksum it writes, and its errors (the builds themselves run once per
session in conftest, through the same function)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from corral import BuildError, Bundle, ManifestError
from corral._manifest_commands import without_generated_commands
from corral.build import BUILD_CACHE_DIR_ENV, _cache_entry, build_plugin, source_digest
from corral.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_built_bundle_keeps_the_manifest_layout_and_verifies(bundles: dict[str, Bundle]) -> None:
    bundle = bundles["hello"]
    text = (bundle.directory / "manifest.yaml").read_text()
    source = (ROOT / "examples" / "hello-python" / "manifest.yaml").read_text()
    assert f'checksum: "sha256:{bundle.wasm_sha256}"' in text
    # everything but the checksum line and the declared commands is the author's text,
    # comments included
    strip = [line for line in source.splitlines() if "checksum:" not in line]
    authors = without_generated_commands(text, bundle.directory)
    assert [line for line in authors.splitlines() if "checksum:" not in line] == strip
    assert Bundle.open(bundle.directory).wasm_sha256 == bundle.wasm_sha256


def test_build_errors_are_one_line(tmp_path: Path) -> None:
    source = tmp_path / "plugin"
    source.mkdir()
    with pytest.raises(BuildError, match=r"no app.py"):
        build_plugin(source)
    (source / "app.py").write_text("")
    with pytest.raises(BuildError, match=r"no manifest.yaml"):
        build_plugin(source)
    manifest = (ROOT / "examples" / "hello-python" / "manifest.yaml").read_text()
    (source / "manifest.yaml").write_text(manifest.replace("version: 0.1.0", "version: one"))
    with pytest.raises(ManifestError, match=r'plugin.version: "one" is not a semantic version'):
        build_plugin(source)
    (source / "manifest.yaml").write_text(manifest.replace('  checksum: ""', ""))
    with pytest.raises(BuildError, match=r"exactly one `checksum:` line"):
        build_plugin(source)


def test_a_guest_that_does_not_compile_reports_componentize_py(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "manifest.yaml").write_text(
        (ROOT / "examples" / "hello-python" / "manifest.yaml").read_text()
    )
    (source / "app.py").write_text("import no_such_module\n")
    with pytest.raises(BuildError) as info:
        build_plugin(source)
    message = str(info.value)
    assert message.endswith("componentize-py failed: ModuleNotFoundError: No module named "
                            "'no_such_module'")  # fmt: skip
    assert "\n" not in message
    assert not (source / "plugin.wasm").exists()


def _plugin_source(tmp_path: Path, app: str, requirements: str) -> Path:
    source = tmp_path / "plugin"
    source.mkdir()
    manifest = (ROOT / "examples" / "hello-python" / "manifest.yaml").read_text()
    (source / "manifest.yaml").write_text(manifest)
    (source / "app.py").write_text(app)
    (source / "requirements.txt").write_text(requirements)
    return source


def test_pure_python_requirements_are_built_in_and_the_source_dir_stays_clean(
    tmp_path: Path,
) -> None:
    app = (
        "import six\n"
        "from corral_sdk import Plugin\n"
        "plugin = Plugin()\n"
        "@plugin.command('six')\n"
        "def version(args):\n"
        "    return six.__version__\n"
        "Handler = plugin.handler()\n"
    )
    source = _plugin_source(tmp_path, app, "six\n")
    before = sorted(p.name for p in source.iterdir())
    # componentize-py imports app.py while building: without six in the build it fails
    bundle = build_plugin(source, tmp_path / "out")
    assert bundle.wasm_path.stat().st_size > 1 << 20
    assert sorted(p.name for p in source.iterdir()) == before  # no __pycache__, no wasm


def test_a_requirement_with_native_code_is_named(tmp_path: Path) -> None:
    source = _plugin_source(tmp_path, "", "ujson>=5\n")
    with pytest.raises(BuildError) as info:
        build_plugin(source)
    message = str(info.value)
    assert "requirements.txt: ujson has no pure-Python wheel (it needs native code" in message
    assert "\n" not in message


def test_the_build_cache_key_covers_requirements(tmp_path: Path) -> None:
    source = _plugin_source(tmp_path, "", "six\n")
    first = source_digest(source)
    (source / "requirements.txt").write_text("six==1.17.0\n")
    assert source_digest(source) != first


def test_unchanged_sources_are_built_once(tmp_path: Path) -> None:
    source = tmp_path / "hello-python"
    shutil.copytree(ROOT / "examples" / "hello-python", source)
    first = build_plugin(source, tmp_path / "first")  # a build, or a hit left by an earlier run
    # the manifest and a signature are the bundle's, not the component's: still a hit
    manifest = source / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("in Python", "in Python, again"))
    (source / "signature.json").write_text("{}")
    started = time.monotonic()
    second = build_plugin(source, tmp_path / "second")
    assert time.monotonic() - started < 5
    # componentize-py's output differs from build to build: equal bytes come from the cache
    assert second.wasm_sha256 == first.wasm_sha256
    assert "in Python, again" in (tmp_path / "second" / "manifest.yaml").read_text()
    entry = _cache_entry(source)
    (source / "app.py").write_text((source / "app.py").read_text() + "# changed\n")
    assert _cache_entry(source) != entry  # changed sources are built again


def test_no_cache_builds_even_when_the_cache_has_the_sources(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bundles: dict[str, Bundle],
) -> None:
    monkeypatch.setenv(BUILD_CACHE_DIR_ENV, str(tmp_path / "cache"))
    source = tmp_path / "hello-js"
    shutil.copytree(ROOT / "examples" / "hello-js", source)
    (source / "plugin.js").write_text('import { nope } from "./missing.js";\n')
    # a cache entry for these (unbuildable) sources: only a cache hit can build them
    entry = _cache_entry(source)
    assert entry.parent == tmp_path / "cache"
    entry.parent.mkdir()
    shutil.copyfile(bundles["hello-js"].wasm_path, entry)
    assert main(["build", str(source)]) == 0
    assert (source / "plugin.wasm").read_bytes() == entry.read_bytes()
    assert main(["build", "--no-cache", str(source)]) == 1
    assert "componentize-js failed" in capsys.readouterr().err
