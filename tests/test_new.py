"""`corral new`: the project it creates builds and passes its own tests as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_plugin_tests
from corral.cli import main


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lang", "files"),
    [
        ("python", ["README.md", "app.py", "manifest.yaml", "test_plugin.py"]),
        ("js", ["README.md", "manifest.yaml", "package.json", "plugin.js", "test_plugin.py"]),
    ],
)
def test_a_new_project_builds_and_passes_its_own_tests(
    tmp_path: Path, lang: str, files: list[str]
) -> None:
    project = tmp_path / "projects" / "greeter"
    assert main(["new", "greeter", "--lang", lang, "--dir", str(project)]) == 0
    assert sorted(p.name for p in project.iterdir()) == files
    assert "name: greeter" in (project / "manifest.yaml").read_text()
    assert "2 passed" in run_plugin_tests(project)
    assert sorted(p.name for p in project.iterdir()) == files  # the build wrote nothing there


def test_new_fills_an_empty_directory_and_defaults_to_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new", "one"]) == 0
    assert (tmp_path / "one" / "app.py").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["new", "two", "--lang", "js", "--dir", "empty"]) == 0
    assert "name: two" in (tmp_path / "empty" / "manifest.yaml").read_text()
    assert '"name": "two"' in (tmp_path / "empty" / "package.json").read_text()


def test_new_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "mine"
    project.mkdir()
    (project / "app.py").write_text("# my work\n")
    assert main(["new", "mine", "--lang", "js", "--dir", str(project)]) == 1
    assert "already exists and is not empty; not overwriting it" in capsys.readouterr().err
    assert [p.name for p in project.iterdir()] == ["app.py"]
    assert (project / "app.py").read_text() == "# my work\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging dir left behind


@pytest.mark.parametrize("lang", ["python", "js"])
@pytest.mark.parametrize("name", ["Bad", "9lives", "with_underscore", "a" * 64, "x\n"])
def test_new_rejects_names_the_manifest_would_reject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, lang: str
) -> None:
    assert main(["new", name, "--lang", lang, "--dir", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "is not a plugin name" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
