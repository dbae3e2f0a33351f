"""The quick-start demo: build the hello plugin, load it into a host, call it.

Run it with `python3 dev.py demo`. The built bundle is cached under .corral/bundles/, keyed by
a hash of the plugin's sources, so only the first run pays for componentize-py.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

from corral import PluginHost
from corral.build import build_cached

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".corral"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="  log  %(name)s: %(message)s")
    source = ROOT / "examples" / "hello-python"
    started = time.perf_counter()
    print(f"building {source.relative_to(ROOT)} (first run: about 20 s) …", flush=True)
    bundle = build_cached(source, DATA / "bundles")
    print(f"  bundle {bundle.directory.relative_to(ROOT)} ({time.perf_counter() - started:.1f} s)")

    # A plugin dir holding just this bundle, as an operator would lay it out.
    plugin_dir = DATA / "demo-plugins"
    shutil.rmtree(plugin_dir, ignore_errors=True)
    shutil.copytree(bundle.directory, plugin_dir / "hello")

    settings = {"hello": {"grant": ["config.read"], "config": {"greeting": "Howdy"}}}
    with PluginHost(plugin_dirs=[plugin_dir], data_dir=DATA, plugins=settings) as host:
        started = time.perf_counter()
        for info in host.load():
            print(f"plugin {info.name} {info.version}: {info.state} {info.reason}".rstrip())
        print(f"  loaded in {time.perf_counter() - started:.2f} s")
        for command, payload in [
            ("echo", {"msg": "hi"}),
            ("greet", {"name": "operator"}),
            ("config", None),
        ]:
            result = host.call("hello", command, payload)
            print(f"hello.{command}({json.dumps(payload)}) -> {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
