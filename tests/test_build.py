"""`corral build`: the checksum it writes, and its errors (the builds themselves run once per
session in conftest, through the same function)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral import BuildError, Bundle, ManifestError
from corral.build import build_plugin

ROOT = Path(__file__).resolve().parent.parent


def test_built_bundle_keeps_the_manifest_layout_and_verifies(bundles: dict[str, Bundle]) -> None:
    bundle = bundles["hello"]
    text = (bundle.directory / "manifest.yaml").read_text()
    source = (ROOT / "examples" / "hello-python" / "manifest.yaml").read_text()
    assert f'checksum: "sha256:{bundle.wasm_sha256}"' in text
    # everything but the checksum line is the author's text, comments included
    strip = [line for line in source.splitlines() if "checksum:" not in line]
    assert [line for line in text.splitlines() if "checksum:" not in line] == strip
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
