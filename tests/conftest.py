"""Shared fixtures: plugins are built from source once per session (cached by source hash) and
compiled once per machine (Corral's own compiled cache), so the suite pays for each only once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral import PluginHost
from corral._sqlite import SQLiteConnections
from corral.build import build_cached
from corral.bundle import Bundle

pytest_plugins = ["corral.testing.jira.pytest_plugin"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = Path(os.environ.get("CORRAL_TEST_BUILD_DIR", ROOT / ".corral-build"))
# Hosts a test makes without `cache_dir` share the suite's compiled cache, not the user's.
os.environ.setdefault("CORRAL_CACHE_DIR", str(BUILD_DIR / "compiled"))
os.environ.setdefault("CORRAL_BUILD_CACHE_DIR", str(BUILD_DIR / "components"))
PLUGIN_SOURCES = {
    "hello": ROOT / "examples" / "hello-python",
    "hello-js": ROOT / "examples" / "hello-js",
    "misbehave": ROOT / "tests" / "plugins" / "misbehave",
    "hostapi": ROOT / "tests" / "plugins" / "hostapi",
    "js-sdk": ROOT / "tests" / "plugins" / "js-sdk",
    "synccount": ROOT / "tests" / "plugins" / "synccount",
    "jira-sync": ROOT / "plugins" / "jira-sync",
}


@pytest.fixture(scope="session")
def bundles() -> dict[str, Bundle]:
    """Every test plugin, built (two at a time: componentize-py is CPU-bound)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(build_cached, source, BUILD_DIR / "bundles")
            for name, source in PLUGIN_SOURCES.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="session")
def compiled_cache_dir() -> Path:
    return BUILD_DIR / "compiled"


@pytest.fixture
def plugin_dir(tmp_path: Path, bundles: dict[str, Bundle]) -> Callable[..., Path]:
    """Lay out a plugin dir holding copies of the named bundles."""

    def make(*names: str, into: str = "plugins") -> Path:
        directory = tmp_path / into
        directory.mkdir(exist_ok=True)
        for name in names:
            shutil.copytree(bundles[name].directory, directory / name)
        return directory

    return make


def copy_as(plugins: Path, name: str, new_name: str) -> Path:
    """Copy bundle `name` as a plugin called `new_name` (only the manifest differs)."""
    shutil.copytree(plugins / name, plugins / new_name)
    manifest = plugins / new_name / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace(f"name: {name}", f"name: {new_name}"))
    return plugins / new_name


@pytest.fixture
def make_host(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> Iterator[Callable[..., PluginHost]]:
    """Start a loaded host over copies of the named bundles; closed after the test."""
    hosts: list[PluginHost] = []

    def make(
        *names: str, plugins: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any
    ) -> PluginHost:
        host = PluginHost(
            plugin_dirs=[plugin_dir(*names)],
            data_dir=tmp_path / "data",
            cache_dir=compiled_cache_dir,
            plugins=plugins,
            **kwargs,
        )
        hosts.append(host)
        host.load()
        return host

    yield make
    for host in hosts:
        host.close()


def run_plugin_tests(project: Path) -> str:
    """Run pytest in a plugin project as its author would; its output, once all passed.

    `-p` stands in for the pytest11 entry point an installed Corral registers (here Corral is
    a source tree on PYTHONPATH).
    """
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "corral.testing.pytest_plugin"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


def public_name(name: str) -> bool:
    """A module attribute a user could import by name. Installed Corral registers a pytest
    plugin, so pytest rewrites the asserts of the whole package, adding `@py_builtins` and
    `@pytest_ar` to each module's namespace: not names anyone imports."""
    return name.isidentifier() and not name.startswith("_")


def vm_steps(db: SQLiteConnections, action: Callable[[], T]) -> tuple[T, int]:
    """`action()`'s result and the SQLite virtual-machine steps it ran on this thread's
    connection of `db` (the one a store's calls from this thread use).

    Tests that a call's work does not grow with the data compare the steps at two sizes of
    store: deterministic where a timing is not, and a scan shows as steps per row.
    """
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with db.reading() as conn:
        conn.set_progress_handler(count, 1)
        try:
            result = action()
        finally:
            conn.set_progress_handler(None, 1)
    return result, steps
