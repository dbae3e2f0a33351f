"""A trapped instance is freed when it is discarded: host memory stays bounded across traps, and
no store is left for interpreter exit (where its WASI output threads used to abort Python)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import ROOT

# Runs in a fresh interpreter, so its peak RSS is this scenario's alone. argv: plugin dir,
# compiled cache, number of memory traps, "close" to close the host before exiting.
_CHILD = """
import logging, sys, tempfile
from corral import PluginHost, PluginMemoryExceeded
logging.basicConfig(level=logging.INFO)  # guest output is logged, through Python, per line
host = PluginHost(plugin_dirs=[sys.argv[1]], data_dir=tempfile.mkdtemp(), cache_dir=sys.argv[2])
host.load()
kept = []  # the traps stay referenced until exit, as an application's error log might keep them
for _ in range(int(sys.argv[3])):
    try:
        host.call("misbehave", "grow")
    except PluginMemoryExceeded as exc:
        kept.append(exc)
if sys.argv[4] == "close":
    host.close()
status = open("/proc/self/status").read().splitlines()
print(next(int(line.split()[1]) << 10 for line in status if line.startswith("VmHWM")))
"""


def _run_child(plugins: Path, cache: Path, traps: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-c", _CHILD, str(plugins), str(cache), str(traps), "close"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_memory_traps_do_not_accumulate_host_memory(
    plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    """20 traps of a plugin that fills its 256 MB each time: the host's peak stays near one."""
    plugins = plugin_dir("misbehave")
    manifest = plugins / "misbehave" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("memory_limit: 48MB", "memory_limit: 256MB"))
    child = _run_child(plugins, compiled_cache_dir, traps=20)
    assert child.returncode == 0, child.stderr[-2000:]
    peak = int(child.stdout.split()[-1])
    # One instance's 256 MB plus the interpreter and the compiled component; the stores freed
    # only by the cyclic GC peaked at over 3 GB here.
    assert peak < 700 << 20, f"host peak RSS {peak >> 20} MB"


def test_the_process_exits_cleanly_after_traps_that_wrote_output(
    plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    """Each run traps 5 times (the guest prints a MemoryError each time), closes the host and
    exits; stores left for exit aborted 4 runs in 10."""
    plugins = plugin_dir("misbehave")
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda _: _run_child(plugins, compiled_cache_dir, 5), range(20)))
    failed = [run for run in runs if run.returncode != 0]
    assert not failed, (
        f"{len(failed)} of 20 exited with {failed[0].returncode}: " + (failed[0].stderr[-1500:])
    )
