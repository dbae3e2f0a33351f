"""plugin-sdk/README.md works as written: its shell blocks run, in order, as a reader runs them.

Fenced blocks are read in order. A ```` ```sh ```` block is run with bash (`-e`: every line must
succeed) in one working directory, through a real `corral` command and a real `python` on PATH;
a block whose info string names a file (```` ```python file=greeter/app.py ````, or
``append=...``) is written to (appended to) that file first, as the reader is told to. A shell
block that cannot run here is marked ```` ```sh no-run ````; there must be few. Builds and
compiles go through the suite's caches, so only a first run (or a change) pays for them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import corral

GUIDE = Path(__file__).resolve().parent.parent / "plugin-sdk" / "README.md"
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_SHELL = "sh"
_NOT_RUN = "sh no-run"
_FILE = re.compile(r"^\w+ (file|append)=(\S+)$")
MAX_NOT_RUN = 2


@dataclass(frozen=True)
class Block:
    info: str
    body: str
    line: int

    def __str__(self) -> str:
        return f"{GUIDE.name} line {self.line}:\n{self.body}"


def blocks() -> list[Block]:
    text = GUIDE.read_text(encoding="utf-8")
    return [
        Block(m[1].strip(), m[2], text.count("\n", 0, m.start()) + 1) for m in _FENCE.finditer(text)
    ]


def test_shell_blocks_are_marked_run_or_not_and_few_are_not() -> None:
    infos = [b.info for b in blocks()]
    shell = [info for info in infos if info.split(" ")[0] in {"sh", "bash", "shell", "console"}]
    assert set(shell) <= {_SHELL, _NOT_RUN}, "a shell block with another marker would not run"
    assert shell.count(_SHELL) >= 6  # the tutorial's steps at least
    assert shell.count(_NOT_RUN) <= MAX_NOT_RUN


def test_anchors_of_the_guide_lead_to_its_headings() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.+)$", _FENCE.sub("", text), re.MULTILINE)
    # GitHub's anchors: lower case, punctuation but - and _ dropped, spaces to hyphens
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    linked = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert linked and linked <= anchors, sorted(linked - anchors)


def _workspace_path(tmp_path: Path) -> str:
    """A PATH whose `corral` and `python` are this checkout's CLI and this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # scripts, not symlinks: a virtualenv's python finds its packages by the path it runs as
    for name, command in {"corral": "-m corral.cli", "python": ""}.items():
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command} "$@"\n')
        script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.slow
def test_every_command_of_the_guide_runs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": _workspace_path(tmp_path),
        "PYTHONPATH": str(Path(corral.__file__).parent.parent),
    }
    outputs: list[str] = []
    for block in blocks():
        written = _FILE.match(block.info)
        if written is not None:
            target = work / written[2]
            assert target.parent.is_dir(), f"{block}\nwrites into a directory not made yet"
            if written[1] == "append":
                assert target.is_file(), f"{block}\nappends to a file not made yet"
                block_text = target.read_text(encoding="utf-8") + block.body
            else:
                block_text = block.body
            target.write_text(block_text, encoding="utf-8")
        elif block.info == _SHELL:
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", block.body],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, f"{block}\nfailed:\n{done.stdout[-3000:]}{done.stderr}"
            outputs.append(done.stdout)
    said = "".join(outputs)
    # each template's two tests and the tutorial's one; the weather example's three
    assert said.count("3 passed") == 3
    assert re.search(r"^greeter-js +loaded", said, re.MULTILINE)
    assert '"message": "Howdy, Ada!"' in said and '"n": 1' in said
    assert "greeter 0.1.0: plugin.wasm sha256 ok, a corral:plugin component; signed by acme" in said
