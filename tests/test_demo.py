"""The README's Jira story holds: its first command, `python3 dev.py demo`, runs end to end (a
local Jira, jira-sync in the sandbox, a full and an incremental sync, a conflict and its
resolution), and its corral.yaml for a Jira Cloud site loads.

The demo runs as dev.py runs it (a subprocess), over the suite's build caches.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import BUILD_DIR, ROOT
from corral import PluginHost


def test_the_demo_tells_its_story(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/demo.py", "--cache-dir", BUILD_DIR, "--workdir", tmp_path],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    story = [
        r"== A local Jira at http://127\.0\.0\.1:\d+: project DEMO, 150 issues",
        # a progress line per slice; how many slices depends on the machine's speed
        r"== Full sync: every issue becomes a task\n(   … \w+ +\d+ items.*\n)+",
        r"   pull: 150 created\n   push: nothing to do\n",
        r"== Incremental sync: only what changed",
        r"   pull: 1 updated, 2 unchanged, 1 conflict\n   push: 1 updated, 1 unchanged\n",
        r"DEMO-\d+ in Jira is now 'In Progress' \(through its workflow's transition\)",
        r"DEMO-\d+'s task now has priority '(critical|lowest)'",
        r"== Open conflict c-\S+: DEMO-3 title\n",
        r"   local  'Ship the sync demo'\n   remote 'Ship the sync demo \(blocked on review\)'",
        r"== Resolved: keep the local title \(written to Jira: True\)",
        r"   Jira DEMO-3 summary: 'Ship the sync demo'",
        r"one more sync: clean=True, open conflicts=0",
    ]
    position = 0
    for line in story:
        found = re.compile(line).search(out, position)
        assert found, f"{line!r} not found in order in:\n{out}"
        position = found.end()
    assert "error" not in out


def test_the_readme_jira_cloud_config_loads(
    tmp_path: Path, plugin_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Sync Jira") :]
    block = section[
        section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))
    ]
    settings = yaml.safe_load(block)["plugins"]
    monkeypatch.setenv("JIRA_API_TOKEN", "not-a-real-token")
    with PluginHost(
        plugin_dirs=[plugin_dir("jira-sync")],
        data_dir=tmp_path / "data",
        cache_dir=BUILD_DIR / "compiled",
        plugins=settings,
    ) as host:
        [info] = host.load()
    assert (info.name, info.state, info.reason) == ("jira-sync", "loaded", "")
