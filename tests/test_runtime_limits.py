"""Limits on real components: time, memory, stack, fuel, output; traps and isolation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import copy_as
from corral import (
    PluginFuelExhausted,
    PluginHost,
    PluginMemoryExceeded,
    PluginTimeout,
    PluginTrap,
)
from corral.config import LimitOptions, PluginSettings

HostFactory = Callable[..., PluginHost]


@pytest.fixture
def misbehave(make_host: HostFactory) -> PluginHost:
    return make_host("misbehave")


def test_timeout_stops_the_call_within_deadline_plus_100ms(misbehave: PluginHost) -> None:
    started = time.monotonic()
    with pytest.raises(PluginTimeout) as info:
        misbehave.call("misbehave", "loop")
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed <= 2.1, elapsed  # execution_timeout: 2s in the manifest
    assert info.value.plugin == "misbehave"
    assert "2 s execution_timeout" in str(info.value)
    # the instance that trapped was discarded; the plugin still works
    assert misbehave.call("misbehave", "count", {"n": 10}) == 45


def test_operator_limit_tightens_the_manifest(make_host: HostFactory) -> None:
    host = make_host("misbehave", plugins={"misbehave": {"limits": {"execution_timeout": "300ms"}}})
    started = time.monotonic()
    with pytest.raises(PluginTimeout):
        host.call("misbehave", "loop")
    assert time.monotonic() - started < 0.4


def test_a_looping_plugin_does_not_stop_another_plugins_call(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    """Plugin A loops past its deadline while plugin B runs a legitimate 1 s call."""
    plugins = plugin_dir("misbehave")
    copy_as(plugins, "misbehave", "spinner")  # plugin B: the same component, another name
    outcome: dict[str, Any] = {}
    with PluginHost(
        plugin_dirs=[plugins], data_dir=tmp_path / "data", cache_dir=compiled_cache_dir
    ) as host:
        assert {(p.name, p.state) for p in host.load()} == {
            ("misbehave", "loaded"),
            ("spinner", "loaded"),
        }

        def run_a() -> None:
            try:
                host.call("misbehave", "loop")
            except PluginTimeout as exc:
                outcome["a"] = exc

        def run_b() -> None:
            started = time.monotonic()
            outcome["b"] = host.call("spinner", "spin", {"seconds": 1.0})
            outcome["b_elapsed"] = time.monotonic() - started

        a = threading.Thread(target=run_a)
        a.start()
        time.sleep(1.5)  # A has been looping for 1.5 s; it times out at 2 s, while B runs
        b = threading.Thread(target=run_b)
        b.start()
        a.join(5)
        b.join(5)
    assert isinstance(outcome["a"], PluginTimeout)
    assert outcome["b"] > 0 and 1.0 <= outcome["b_elapsed"] < 1.9


def test_memory_cap_is_a_typed_trap(misbehave: PluginHost) -> None:
    with pytest.raises(PluginMemoryExceeded) as info:
        misbehave.call("misbehave", "grow")
    assert "50331648 bytes" in str(info.value)  # memory_limit: 48MB
    assert misbehave.call("misbehave", "count", {"n": 3}) == 3


def test_stack_overflow_is_a_trap_with_a_backtrace(misbehave: PluginHost) -> None:
    with pytest.raises(PluginTrap) as info:
        misbehave.call("misbehave", "recurse")
    assert info.value.trap == "call stack exhausted"
    assert "libpython" in info.value.backtrace
    assert misbehave.call("misbehave", "count", {"n": 3}) == 3


def test_fuel_budget_per_call(make_host: HostFactory) -> None:
    host = make_host("misbehave", plugins={"misbehave": {"limits": {"fuel": 50_000_000}}})
    assert host.call("misbehave", "count", {"n": 100}) == 4950  # small work fits the budget
    with pytest.raises(PluginFuelExhausted):
        host.call("misbehave", "count", {"n": 10_000_000})
    # the budget is per call, not per instance lifetime
    for _ in range(3):
        assert host.call("misbehave", "count", {"n": 100}) == 4950


def test_a_plugin_with_a_fuel_budget_still_times_out(make_host: HostFactory) -> None:
    """Plugins with a fuel budget run on an engine of their own, whose epoch ticks as well."""
    limits = {"fuel": 1 << 60, "execution_timeout": "300ms"}
    host = make_host("misbehave", plugins={"misbehave": {"limits": limits}})
    started = time.monotonic()
    with pytest.raises(PluginTimeout):
        host.call("misbehave", "loop")
    assert time.monotonic() - started < 0.4


def test_setting_and_removing_a_fuel_budget_takes_effect_on_refresh(
    make_host: HostFactory,
) -> None:
    host = make_host("misbehave")
    assert host.call("misbehave", "count", {"n": 1_000_000}) == 499999500000  # not metered
    budget = PluginSettings(limits=LimitOptions(fuel=50_000_000))
    host.refresh(host.config.model_copy(update={"plugins": {"misbehave": budget}}))
    with pytest.raises(PluginFuelExhausted):
        host.call("misbehave", "count", {"n": 10_000_000})
    host.refresh(host.config.model_copy(update={"plugins": {}}))
    assert host.call("misbehave", "count", {"n": 10_000_000}) == 49999995000000


def test_uncaught_guest_exception_is_a_trap_naming_it(misbehave: PluginHost) -> None:
    with pytest.raises(PluginTrap) as info:
        misbehave.call("misbehave", "crash")
    assert "RuntimeError: an uncaught exception in the guest" in str(info.value)
    assert not isinstance(info.value, PluginTimeout | PluginMemoryExceeded)


def test_instances_are_reused_until_they_trap(misbehave: PluginHost) -> None:
    first = misbehave.call("misbehave", "state")
    assert misbehave.call("misbehave", "state") == first + 1
    with pytest.raises(PluginTrap):
        misbehave.call("misbehave", "crash")
    assert misbehave.call("misbehave", "state") == 1  # a fresh instance


def test_guest_output_goes_to_the_log_bounded(
    misbehave: PluginHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="corral.plugin.misbehave"):
        assert misbehave.call("misbehave", "spew", {"lines": 1000}) == "spewed"
    lines = [r for r in caplog.records if r.name == "corral.plugin.misbehave"]
    logged = sum(len(r.getMessage()) for r in lines if "[stdout] x" in r.getMessage())
    assert 60_000 < logged < 70_000  # 64 KiB per call, of 1 MB printed
    assert any("dropped over the 65536-byte limit" in r.getMessage() for r in lines)


def test_concurrent_calls_to_one_plugin_use_a_bounded_pool(make_host: HostFactory) -> None:
    host = make_host("misbehave", plugins={"misbehave": {"limits": {"max_instances": 2}}})
    results: list[Any] = []
    errors: list[BaseException] = []

    def spin() -> None:
        try:
            results.append(host.call("misbehave", "spin", {"seconds": 0.3}))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=spin) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert not errors and len(results) == 4
    # two instances, four 0.3 s calls: two rounds (on 2 cores), not one
    assert elapsed >= 0.6


def _manifest_asks(plugins: Path, **runtime: str) -> None:
    manifest = plugins / "misbehave" / "manifest.yaml"
    text = manifest.read_text()
    for key, value in runtime.items():
        text = "\n".join(
            f"  {key}: {value}" if line.startswith(f"  {key}:") else line
            for line in text.splitlines()
        )
    manifest.write_text(text)


def test_a_manifest_alone_gets_at_most_the_built_in_ceiling(
    tmp_path: Path,
    plugin_dir: Callable[..., Path],
    compiled_cache_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins = plugin_dir("misbehave")
    _manifest_asks(plugins, memory_limit="4GB", execution_timeout="100000m")
    host = PluginHost(plugin_dirs=[plugins], data_dir=tmp_path / "d", cache_dir=compiled_cache_dir)
    with host:
        with caplog.at_level(logging.INFO, logger="corral.registry"):
            host.load()
        with pytest.raises(PluginMemoryExceeded) as info:
            host.call("misbehave", "grow")
    assert "268435456 bytes" in str(info.value)  # 256MB, not 4GB
    notes = [r.getMessage() for r in caplog.records if "ceiling" in r.getMessage()]
    assert any("memory_limit 4GB" in n and "of 256MB" in n for n in notes), notes
    assert any("execution_timeout 100000m" in n and "of 60s" in n for n in notes), notes


def test_operator_defaults_are_ceilings_a_plugin_setting_can_raise(
    tmp_path: Path, plugin_dir: Callable[..., Path], compiled_cache_dir: Path
) -> None:
    plugins = plugin_dir("misbehave")
    copy_as(plugins, "misbehave", "raised")
    _manifest_asks(plugins, execution_timeout="100000m")
    with PluginHost(
        plugin_dirs=[plugins],
        data_dir=tmp_path / "d",
        cache_dir=compiled_cache_dir,
        defaults={"execution_timeout": "300ms", "memory_limit": "32MB"},
        plugins={"raised": {"limits": {"memory_limit": "1GB"}}},
    ) as host:
        host.load()
        started = time.monotonic()
        with pytest.raises(PluginTimeout):
            host.call("misbehave", "loop")
        assert time.monotonic() - started < 0.5  # the defaults' 300ms, not 100000m
        with pytest.raises(PluginMemoryExceeded) as info:
            host.call("misbehave", "grow")
        assert "33554432 bytes" in str(info.value)  # the defaults' 32MB, under the manifest's 48MB
        with pytest.raises(PluginMemoryExceeded) as info:
            host.call("raised", "grow")
        assert "50331648 bytes" in str(info.value)  # the manifest's 48MB, under a raised 1GB
