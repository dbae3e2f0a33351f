"""Declared commands benchmark: what checking a call's input against its input_schema costs.

    .venv/bin/python bench/commands.py [--calls 2000]

Times `host.call` of hello's `repeat` (a dataclass input, declared by `corral build`) beside
the same bundle with its declaration removed, in the same run, and the check alone
(`CommandValidators.check_input`) for that input and for jira-sync's `sync` input.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from corral import PluginHost
from corral._commands import CommandValidators
from corral.build import build_cached
from corral.bundle import Bundle

ROOT = Path(__file__).resolve().parent.parent
REPEAT = {"text": "hi", "times": 3}
SYNC = {"mode": "incremental", "dry_run": False, "budget_ms": 5000}


def per_call_us(n: int, *calls: Callable[[], object]) -> list[float]:
    """The best of 6 rounds for each call. The calls take turns, so a busy machine slows them
    alike, and each round starts with the next one: whichever runs first in a round was
    measured markedly faster."""
    best = [float("inf")] * len(calls)
    for round in range(6):
        for turn in range(len(calls)):
            index = (round + turn) % len(calls)
            start = time.perf_counter()
            for _ in range(n):
                calls[index]()
            best[index] = min(best[index], (time.perf_counter() - start) / n)
    return [seconds * 1e6 for seconds in best]


def undeclared_copy(bundle: Path, target: Path) -> None:
    shutil.copytree(bundle, target)
    manifest = target / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data.pop("commands")
    data["plugin"]["name"] = "plain"
    manifest.write_text(yaml.safe_dump(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    cache = ROOT / ".corral" / "bundles"
    hello = build_cached(ROOT / "examples" / "hello-python", cache)
    jira = Bundle.open(build_cached(ROOT / "plugins" / "jira-sync", cache).directory)
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        shutil.copytree(hello.directory, plugins / "hello")
        undeclared_copy(hello.directory, plugins / "plain")
        grant = {name: {"grant": ["config.read"]} for name in ("hello", "plain")}
        with PluginHost(plugin_dirs=[plugins], data_dir=Path(tmp) / "data", plugins=grant) as host:
            assert all(info.state == "loaded" for info in host.load())
            declared, plain = per_call_us(
                args.calls,
                lambda: host.call("hello", "repeat", REPEAT),
                lambda: host.call("plain", "repeat", REPEAT),
            )
    repeat = CommandValidators("hello", hello.manifest.commands)
    sync = CommandValidators("jira-sync", jira.manifest.commands)
    check_repeat, check_sync = per_call_us(
        args.calls * 10,
        lambda: repeat.check_input("repeat", REPEAT),
        lambda: sync.check_input("sync", SYNC),
    )
    print(f"host.call repeat, declared:    {declared:8.1f} us")
    print(f"host.call repeat, undeclared:  {plain:8.1f} us")
    print(f"  ratio declared/undeclared:   {declared / plain:8.3f}")
    print(f"check_input repeat alone:      {check_repeat:8.1f} us")
    print(f"check_input jira-sync sync:    {check_sync:8.1f} us")


if __name__ == "__main__":
    main()
