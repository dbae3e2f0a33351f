"""JavaScript against Python plugins: build time, component size, compile time, call time.

    .venv/bin/python bench/js_plugins.py [--calls 500]

Builds examples/hello-js and examples/hello-python from scratch (no build cache; the
componentize-js toolchain is installed first if missing, and that install is timed apart),
compiles each with Wasmtime into an empty compiled cache, and times `echo` through the host.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from corral import PluginHost
from corral._build_js import _installed_toolchain
from corral.build import build_plugin

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"hello-js": ROOT / "examples" / "hello-js", "hello": ROOT / "examples" / "hello-python"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()

    start = time.perf_counter()
    _installed_toolchain(timeout_s=900)
    print(f"componentize-js toolchain ready in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory(prefix="corral-bench-js-") as tmp:
        for name, source in EXAMPLES.items():
            start = time.perf_counter()
            bundle = build_plugin(source, Path(tmp) / name / "plugins" / name, use_cache=False)
            built = time.perf_counter() - start
            size = bundle.wasm_path.stat().st_size
            start = time.perf_counter()
            with PluginHost(
                plugin_dirs=[bundle.directory.parent],
                data_dir=Path(tmp) / name / "data",
                cache_dir=Path(tmp) / name / "compiled",
                plugins={name: {"grant": ["config.read"]}},
            ) as host:
                host.load()
                compiled = time.perf_counter() - start
                host.call(name, "echo", {"n": 0})
                start = time.perf_counter()
                for n in range(args.calls):
                    host.call(name, "echo", {"n": n})
                call_ms = (time.perf_counter() - start) / args.calls * 1e3
            print(
                f"{name:9} build {built:5.1f} s  component {size / 1e6:5.1f} MB  "
                f"compile {compiled:5.1f} s  echo {call_ms:.3f} ms/call"
            )


if __name__ == "__main__":
    main()
