"""`corral build`: the checksum it writes, and its errors (the builds themselves run once per
session in conftest, through the same function)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import BuildError, Bundle, ManifestError
from corral._manifest_commands import without_generated_commands
from corral.build import build_plugin, source_digest

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
