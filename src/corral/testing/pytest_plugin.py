"""The `corral_plugin` fixture, registered through the ``pytest11`` entry point of Corral.

def test_greet(corral_plugin):
    plugin = corral_plugin(Path(__file__).parent, grants=["config.read"])
    assert plugin.call("greet", {"name": "Ada"}) == {"message": "Hello, Ada!"}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._harness import PluginHarness

__all__ = ["corral_plugin"]


@pytest.fixture
def corral_plugin(tmp_path: Path) -> Iterator[Callable[..., PluginHarness]]:
    """`corral_plugin(source, **options)`: a `PluginHarness` (same arguments) whose data lives
    in the test's `tmp_path`; every one made is closed when the test ends."""
    harnesses: list[PluginHarness] = []

    def make(source: str | Path, **options: Any) -> PluginHarness:
        options.setdefault("data_dir", tmp_path / f"corral-{len(harnesses)}")
        harness = PluginHarness(source, **options)
        harnesses.append(harness)
        return harness

    yield make
    for harness in reversed(harnesses):
        harness.close()
