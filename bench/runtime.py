"""Runtime benchmark: load, instantiate and call the hello plugin, against bare wasmtime.

    .venv/bin/python bench/runtime.py [--calls 2000] [--loop 2000000]

Prints cold load (compile), warm load (cache hit), instantiation, resident memory per live
instance, and the `invoke("echo")` round trip through Corral and through the bare
`wasmtime.component` API on the same engine configuration, in the same run, with the ratio.
Corral's call is faster than the bare one because it resolves the export's component types
once instead of on every call; the line below it separates that from Corral's own overhead.
Last, the cost of metering fuel: the same CPU-bound guest loop (the test plugin `misbehave`'s
`count`) in a plugin without a fuel limit and in one with a budget too large to run out.
Targets: warm load <= 100 ms; Corral's per-call overhead <= 1.2x the bare call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wasmtime import Store, WasiConfig
from wasmtime.component import Component, Linker

from corral import PluginHost
from corral.build import build_cached
from corral.registry import PluginRunner

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = '{"msg": "hello, benchmark", "n": 42}'


def median_us(calls: int, *fns: Callable[[], Any]) -> list[float]:
    """Median microseconds per call of each function, measured interleaved so that load on
    the machine falls on all of them alike."""
    for fn in fns:
        for _ in range(min(100, calls)):  # warm up
            fn()
    samples: list[list[int]] = [[] for _ in fns]
    for _ in range(calls):
        for fn, taken in zip(fns, samples, strict=True):
            started = time.perf_counter_ns()
            fn()
            taken.append(time.perf_counter_ns() - started)
    return [statistics.median(taken) / 1000 for taken in samples]


def resident_bytes() -> int:
    """This process's resident set size (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bare_invoke(runner: PluginRunner) -> Callable[[], Any]:
    """The same component, instantiated and called with nothing but wasmtime-py."""
    metered = runner.limits.fuel is not None
    engine = runner.runtime.engine(metered)
    component: Component = runner.component
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        for name, item in component.type.imports(engine).items():
            if name.startswith("corral:plugin/") and "/types@" not in name:
                with root.add_instance(name) as instance:
                    for function in item.ty.exports(engine):
                        instance.add_func(function, lambda *args: None)
    store = Store(engine)
    store.set_wasi(WasiConfig())
    store.set_epoch_deadline(1 << 40)
    if metered:
        store.set_fuel(1 << 62)
    instance = linker.instantiate(store, component)
    handler = instance.get_export_index(store, "corral:plugin/handler@0.1.0")
    invoke = instance.get_func(store, instance.get_export_index(store, "invoke", handler))
    assert invoke is not None

    def call() -> Any:
        result = invoke(store, "echo", PAYLOAD)
        invoke.post_return(store)
        return result

    assert json.loads(call()) == json.loads(PAYLOAD)  # JS writes JSON without spaces
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--loop", type=int, default=2_000_000, help="guest loop iterations")
    args = parser.parse_args()

    bundle = build_cached(ROOT / "examples" / "hello-python", ROOT / ".corral" / "bundles")
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        shutil.copytree(bundle.directory, plugins / "hello")
        settings = {"hello": {"grant": ["config.read"]}}

        def load() -> tuple[float, PluginHost]:
            # A cache of its own: the first load must compile, not hit the user's cache.
            host = PluginHost(
                plugin_dirs=[plugins],
                data_dir=Path(tmp) / "data",
                cache_dir=Path(tmp) / "cache",
                plugins=settings,
            )
            started = time.perf_counter()
            (info,) = host.load()
            elapsed = time.perf_counter() - started
            assert info.state == "loaded", info.reason
            return elapsed, host

        cold, host = load()
        host.close()
        warm_samples = []
        for _ in range(5):
            elapsed, host = load()
            warm_samples.append(elapsed)
            host.close()
        warm = statistics.median(warm_samples)

        _, host = load()
        with host:
            runner = host._registry.runner("hello")
            instantiate_ms = [0.0] * 20
            for i in range(20):
                started = time.perf_counter()
                runner._new_instance(time.monotonic() + 10)
                instantiate_ms[i] = (time.perf_counter() - started) * 1000
            before = resident_bytes()
            live = [runner._new_instance(time.monotonic() + 60) for _ in range(50)]
            for instance in live:  # memory is only resident once the guest touches it
                instance.invoke(instance.store, "echo", PAYLOAD)
                instance.invoke.post_return(instance.store)
            per_instance_mb = (resident_bytes() - before) / len(live) / (1 << 20)
            del live

            direct = runner._new_instance(time.monotonic() + 3600)

            def frozen_call() -> Any:
                result = direct.invoke(direct.store, "echo", PAYLOAD)
                direct.invoke.post_return(direct.store)
                return result

            bare_us, frozen_us, corral_us, host_call_us = median_us(
                args.calls,
                bare_invoke(runner),
                frozen_call,
                lambda: runner.invoke("echo", PAYLOAD),
                lambda: host.call("hello", "echo", {"msg": "hi"}),
            )

    print(f"cold load (compile)      {cold * 1000:9.1f} ms")
    print(f"warm load (cache hit)    {warm * 1000:9.1f} ms   (target <= 100 ms)")
    print(f"instantiate              {statistics.median(instantiate_ms):9.2f} ms")
    print(f"live instance            {per_instance_mb:9.2f} MB resident each (50 held)")
    print(f"invoke('echo'), bare     {bare_us:9.1f} us   (median of {args.calls})")
    print(
        f"invoke('echo'), corral   {corral_us:9.1f} us   ratio {corral_us / bare_us:.2f}x "
        "(target <= 1.2x)"
    )
    print(
        f"  of which the export call (types frozen) {frozen_us:.1f} us; Corral's pool, deadline "
        f"and call context add {corral_us - frozen_us:.1f} us"
    )
    print(f"host.call (+JSON)        {host_call_us:9.1f} us   ratio {host_call_us / bare_us:.2f}x")
    unmetered_ms, metered_ms = fuel_cost(args.loop)
    print(
        f"guest loop, no fuel      {unmetered_ms:9.1f} ms   ({args.loop:,} iterations, best of 5)"
    )
    print(f"guest loop, fuel metered {metered_ms:9.1f} ms   ratio {metered_ms / unmetered_ms:.2f}x")


def fuel_cost(iterations: int) -> tuple[float, float]:
    """Best-of-5 milliseconds of a CPU-bound guest call, without and with fuel metering
    (alternating, so load on the machine falls on both alike)."""
    bundle = build_cached(ROOT / "tests" / "plugins" / "misbehave", ROOT / ".corral" / "bundles")
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        shutil.copytree(bundle.directory, plugins / "misbehave")
        hosts = [
            PluginHost(
                plugin_dirs=[plugins],
                data_dir=Path(tmp) / f"data-{fuel}",
                cache_dir=ROOT / ".corral" / "compiled",
                plugins={"misbehave": {"limits": {"fuel": fuel}}},
            )
            for fuel in (None, 1 << 60)
        ]
        times: list[list[float]] = [[], []]
        for host in hosts:
            host.load()
            host.call("misbehave", "count", {"n": 1000})  # an instance, warm
        for _ in range(5):
            for host, taken in zip(hosts, times, strict=True):
                started = time.perf_counter()
                host.call("misbehave", "count", {"n": iterations})
                taken.append((time.perf_counter() - started) * 1000)
        for host in hosts:
            host.close()
    return min(times[0]), min(times[1])


if __name__ == "__main__":
    main()
