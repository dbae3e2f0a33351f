#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ (standard library).

    python3 dev.py demo     sync a local Jira with the task store through the jira-sync plugin
    python3 dev.py test     run the whole test suite (with ruff and mypy)

Both create `.venv/` and install the project with its dev dependencies on first use, and again
whenever pyproject.toml changes; after the first install they say how to reach `corral`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".corral-installed"


def ensure_venv() -> bool:
    """Create or update .venv as pyproject.toml asks; whether this was its first install."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return False
    first = not STAMP.exists()
    if not PYTHON.exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing corral and its dev dependencies into .venv", flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", f"{ROOT}[dev]"],
        check=True,
    )  # fmt: skip
    STAMP.write_text(wanted)
    return first


def how_to_reach_corral() -> str:
    """What to type for the `corral` command, which lives in .venv, not on the PATH."""
    activate = (
        rf"{VENV.name}\Scripts\activate" if os.name == "nt" else f"source {VENV.name}/bin/activate"
    )
    corral = BIN.relative_to(ROOT) / ("corral.exe" if os.name == "nt" else "corral")
    return (
        f"corral is installed in {VENV.name}/: run `{activate}` to have the `corral` command "
        f"in this shell, or call `{corral}` directly (`pip install -e .` puts it in another "
        "environment)"
    )


def run(args: list[str]) -> int:
    env = {**os.environ, "VIRTUAL_ENV": str(VENV), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(args, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs before the venv exists
        print("dev.py: Python 3.11 or newer is needed", file=sys.stderr)
        return 2
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    first_install = ensure_venv()
    if argv[0] == "demo":
        code = run([str(PYTHON), "examples/demo.py", *argv[1:]])
    else:
        code = run([str(PYTHON), "-m", "pytest", *argv[1:]])
    if first_install:  # last, where it is not scrolled away by what the command printed
        print(how_to_reach_corral(), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
