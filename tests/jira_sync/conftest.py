"""Fixtures for the jira-sync tests: an emulator on loopback and a host running the plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral import PluginHost
from corral.testing.jira import JiraEmulator, serve

from .harness import PLUGIN, Bench, operator_config


@pytest.fixture
def make_bench(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> Iterator[Callable[..., Bench]]:
    """`make_bench(issues=N, emulator={...}, **plugin_config)`: a fresh emulator and host."""
    stack: list[Any] = []
    hosts: list[PluginHost] = []

    def make(*, issues: int = 0, emulator: dict[str, Any] | None = None, **config: Any) -> Bench:
        jira_emulator = JiraEmulator(issues=issues, seed=1, **(emulator or {}))
        server = serve(jira_emulator)
        handle = server.__enter__()
        stack.append((server, jira_emulator))
        options = operator_config(handle, tmp_path / "jira-token", **config)
        plugins = plugin_dir(PLUGIN)

        def open_host() -> PluginHost:
            host = PluginHost(
                plugin_dirs=[plugins],
                data_dir=tmp_path / "data",
                cache_dir=compiled_cache_dir,
                plugins={PLUGIN: options},
            )
            hosts.append(host)
            host.load()
            return host

        return Bench(open_host, handle, options)

    yield make
    for host in hosts:
        host.close()
    for server, jira_emulator in reversed(stack):
        server.__exit__(None, None, None)
        jira_emulator.close()
