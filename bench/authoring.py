"""Plugin authoring: from `corral new` to a bundle, a rebuild, a compile and a call, per language.

    .venv/bin/python bench/authoring.py [--calls 2000]

For a new Python and a new JavaScript plugin, in a temporary directory with empty build and
compiled caches: `corral new` plus the edit that adds an `echo` command, then the first
`corral build` (timed together: new -> built bundle); a rebuild of the unchanged sources in
place, in this process and as a `corral build` subprocess (cache hits: under 1 s), that one
beside a `corral --version` process, which only starts and imports the CLI; the component's
size; the host's first load (a cold Wasmtime compile); and the `echo`
round trip through `host.call`, against the bare export call of the same component (wasmtime-py
alone, as bench/runtime.py measures it) in the same run. The componentize-js toolchain is
installed first if missing, and that install is timed apart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtime import bare_invoke, median_us

import corral
from corral import PluginHost
from corral._build_js import _installed_toolchain
from corral.build import BUILD_CACHE_DIR_ENV, build_plugin
from corral.scaffold import LANGUAGES, new_plugin

# What an author adds to the new project: a command that returns its input.
ECHO = {
    "python": '\n\n@plugin.command("echo")\ndef echo(args):\n    return args\n',
    "js": '\nplugin.command("echo", (args) => args);\n',
}
EXPORT_LINE = {"python": "\n\nHandler = plugin.handler()", "js": "\nexport const handler"}


def add_echo(project: Path, lang: str) -> None:
    source = project / LANGUAGES[lang]
    text = source.read_text(encoding="utf-8")
    head, tail = text.split(EXPORT_LINE[lang])
    source.write_text(head + ECHO[lang] + EXPORT_LINE[lang] + tail, encoding="utf-8")


def cli_s(*args: str) -> float:
    """Wall time of `corral ARGS...` in a new process (interpreter start-up included)."""
    env = {**os.environ, "PYTHONPATH": str(Path(corral.__file__).parent.parent)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "corral.cli", *args], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - started


def measure(lang: str, tmp: Path, calls: int) -> None:
    name = f"new-{lang}"
    project = tmp / lang / "plugins" / name
    started = time.perf_counter()
    new_plugin(name, project, lang)
    add_echo(project, lang)
    bundle = build_plugin(project)
    built = time.perf_counter() - started
    started = time.perf_counter()
    rebuilt = build_plugin(project)
    rebuilt_s = time.perf_counter() - started
    assert rebuilt.wasm_sha256 == bundle.wasm_sha256, "the rebuild was not a cache hit"
    # the baseline: a process that starts, imports the CLI and does nothing
    rebuilt_cli_s, idle_cli_s = cli_s("build", str(project)), cli_s("--version")
    size = bundle.wasm_path.stat().st_size
    started = time.perf_counter()
    with PluginHost(
        plugin_dirs=[project.parent],
        data_dir=tmp / lang / "data",
        cache_dir=tmp / lang / "compiled",  # empty: the first load compiles
        plugins={name: {"grant": ["config.read"]}},
    ) as host:
        host.load()
        compiled = time.perf_counter() - started
        runner = host._registry.runner(name)
        bare_us, host_us = median_us(
            calls, bare_invoke(runner), lambda: host.call(name, "echo", {"msg": "hi"})
        )
    print(
        f"{lang:6}  new -> bundle {built:5.1f} s  rebuild {rebuilt_s * 1e3:4.0f} ms "
        f"(a `corral build` process {rebuilt_cli_s:4.2f} s, `corral --version` {idle_cli_s:4.2f} s)"
    )
    print(f"{'':6}  component {size / 1e6:5.1f} MB  compile {compiled:5.1f} s")
    print(
        f"{'':6}  echo: host.call {host_us:6.1f} us, bare export call {bare_us:6.1f} us, "
        f"ratio {host_us / bare_us:.2f}x (median of {calls})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    started = time.perf_counter()
    _installed_toolchain(timeout_s=900)
    print(f"componentize-js toolchain ready in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory(prefix="corral-bench-authoring-") as tmp:
        # an empty build cache, so the first build builds and the rebuild is the hit measured
        os.environ[BUILD_CACHE_DIR_ENV] = str(Path(tmp) / "builds")
        for lang in LANGUAGES:
            measure(lang, Path(tmp), args.calls)


if __name__ == "__main__":
    main()
