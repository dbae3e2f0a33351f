"""dev.py, the quick start's entry point: after its first install it says how to reach `corral`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT


def _dev_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("first_install", [True, False])
def test_the_first_install_ends_with_how_to_reach_corral(
    first_install: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = _dev_module()
    ran: list[list[str]] = []
    monkeypatch.setattr(dev, "ensure_venv", lambda: first_install)
    monkeypatch.setattr(dev, "run", lambda args: ran.append(args) or 3)
    assert dev.main(["test", "-q"]) == 3  # the command's own exit code
    assert ran == [[str(dev.PYTHON), "-m", "pytest", "-q"]]
    out = capsys.readouterr().out
    if first_install:
        assert out.splitlines()[-1] == dev.how_to_reach_corral()
        assert "`source .venv/bin/activate`" in out and "`.venv/bin/corral`" in out
    else:
        assert out == ""


def test_the_readme_says_how_to_reach_corral() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") : readme.index("## Sync Jira")]
    assert "source .venv/bin/activate" in quick_start and "pip install -e ." in quick_start


def test_the_installed_command_runs() -> None:
    # What the hint names: the console script beside the environment's Python.
    corral = Path(sys.executable).parent / ("corral.exe" if sys.platform == "win32" else "corral")
    done = subprocess.run(
        [str(corral), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("corral ")
