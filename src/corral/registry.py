"""Discovering bundles in the plugin directories and loading each one, or recording why not.

Loading a bundle goes: manifest → checksum → name → grants → capability configuration (plugin
config included) → compile or cache hit → contract check → runner. The first failing step sets
the plugin's state to ``failed`` with a one-line reason; one broken bundle never stops the
others, whatever it raises (an exception nobody expected is logged with its traceback at debug
level).

Names: a plugin's name comes with its grants, credentials, stored data and task links, so
dropping a second bundle with the same name into any plugin dir must not take it over. When
several bundles claim a name, ``plugins.<name>.pin`` decides (only a bundle in the pinned plugin
dir may have it); where no pin decides, none of them gets the name: each is ``failed`` with a
reason naming the others and how to pin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from wasmtime.component import Component, ComponentInstanceType

from ._cache import CompiledCache
from ._errors import (
    BundleError,
    ConfigError,
    CorralError,
    PermissionDenied,
    PluginNotFound,
    PluginUnavailable,
    describe_failure,
)
from ._units import parse_duration, parse_size
from .bundle import Bundle, BundleLimits
from .capabilities import CAPABILITIES, PluginContext, wit_interface
from .capabilities.log import plugin_logger
from .config import LIMIT_CEILINGS, HostConfig, LimitOptions
from .host_services import HostServices
from .manifest import MANIFEST_FILENAME, Manifest
from .permissions import expand_permissions
from .runtime import HANDLER, PluginLimits, PluginRunner, Runtime

__all__ = ["PluginInfo", "Registry"]

_log = logging.getLogger("corral.registry")

State = Literal["loaded", "failed", "disabled"]
_HANDLER_FUNCTIONS = ("invoke", "on-event")


@dataclass(frozen=True)
class PluginInfo:
    """What the host knows about one discovered bundle."""

    name: str
    state: State
    reason: str = ""
    directory: Path | None = None
    version: str = ""
    permissions: frozenset[str] = frozenset()
    """The permissions in force (requested and granted)."""
    from_cache: bool = False


@dataclass
class _Loaded:
    info: PluginInfo
    runner: PluginRunner | None = None
    capability_states: list[tuple[object, object]] = field(default_factory=list)
    error: Exception | None = None
    """Why it failed to load: the cause of the `PluginUnavailable` a call raises."""


@dataclass
class _Generation:
    """The outcome of one discovery: swapped in whole, so callers never see half a reload."""

    plugins: dict[str, _Loaded] = field(default_factory=dict)
    unopened: list[PluginInfo] = field(default_factory=list)
    """Bundles that failed before their plugin name was known, or lost a name clash."""


@dataclass(frozen=True)
class _Claim:
    """An opened bundle claiming its plugin name from one of the plugin dirs."""

    bundle: Bundle
    plugin_dir: Path


def _bundle_dirs(plugin_dirs: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(plugin dir, bundle dir) for each subdirectory holding a manifest.yaml of any kind.

    A manifest that is a FIFO, a device or a symlink out of the bundle is listed too, so that
    opening it fails that bundle with a reason instead of hiding it.
    """
    for plugin_dir in plugin_dirs:
        if not plugin_dir.is_dir():
            raise ConfigError(f"plugin dir {plugin_dir} does not exist or is not a directory")
        for child in sorted(plugin_dir.iterdir()):
            manifest = child / MANIFEST_FILENAME
            try:
                listed = child.is_dir() and (manifest.is_symlink() or manifest.exists())
            except OSError:  # e.g. a bundle dir nobody may search: opening it says why
                listed = True
            if listed:
                yield plugin_dir, child


def _settle_name(
    name: str, claims: list[_Claim], pinned_dir: Path | None
) -> tuple[_Claim | None, list[tuple[_Claim, str]]]:
    """Which claim gets the name, and why each of the others does not."""
    refused: list[tuple[_Claim, str]] = []
    eligible: list[_Claim] = []
    for claim in claims:
        if pinned_dir is None or _same_dir(claim.plugin_dir, pinned_dir):
            eligible.append(claim)
        else:
            pin = f"plugin name {name!r} is pinned to {pinned_dir} (plugins.{name}.pin.plugin_dir)"
            refused.append((claim, pin))
    if len(eligible) <= 1:
        return (eligible[0] if eligible else None), refused
    if len({c.plugin_dir for c in eligible}) == len(eligible):
        fix = f"pin the name to one plugin dir with plugins.{name}.pin.plugin_dir in corral.yaml"
    else:
        fix = f"keep one bundle named {name!r} per plugin dir"
    for claim in eligible:
        others = ", ".join(str(c.bundle.directory) for c in eligible if c is not claim)
        reason = f"plugin name {name!r} is also claimed by {others}; none of them is loaded: {fix}"
        refused.append((claim, reason))
    return None, refused


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return a == b


def effective_limits(manifest: Manifest, operator: LimitOptions) -> PluginLimits:
    """What the manifest asks, capped by the operator's ceilings (built-in ones where unset).

    A manifest asking for more than a ceiling gets the ceiling (and a log line): the limits are
    the operator's policy, and a plugin that truly needs more fails with a trap that names the
    limit, which the operator can then raise for that plugin alone.
    """
    ceilings = operator.merged_over(LIMIT_CEILINGS)
    assert ceilings.memory_limit is not None and ceilings.execution_timeout is not None
    runtime, name = manifest.runtime, manifest.name
    memory = runtime.memory_limit_bytes
    if memory > parse_size(ceilings.memory_limit):
        _log_capped(name, "memory_limit", runtime.memory_limit, ceilings.memory_limit)
        memory = parse_size(ceilings.memory_limit)
    timeout = runtime.execution_timeout_s
    if timeout > parse_duration(ceilings.execution_timeout):
        _log_capped(
            name, "execution_timeout", runtime.execution_timeout, ceilings.execution_timeout
        )
        timeout = parse_duration(ceilings.execution_timeout)
    fuels = [f for f in (runtime.fuel, ceilings.fuel) if f is not None]
    return PluginLimits(
        memory_bytes=memory,
        timeout_s=timeout,
        fuel=min(fuels) if fuels else None,
        max_instances=ceilings.max_instances or 1,
    )


def _log_capped(plugin: str, field: str, asked: str, ceiling: str) -> None:
    # Info, not a warning: capping is the operator's policy working as configured.
    _log.info(
        "plugin %s: manifest asks for runtime.%s %s, over the operator's ceiling of %s; "
        "using %s (raise it with plugins.%s.limits.%s in corral.yaml)",
        plugin,
        field,
        asked,
        ceiling,
        ceiling,
        plugin,
        field,
    )


def check_contract(component: Component, runtime: Runtime, bundle: Bundle) -> None:
    """Refuse a component that does not export `handler` or imports what the host lacks."""
    engine = runtime.engine
    ctype = component.type
    exports = ctype.exports(engine)
    source = f"{bundle.wasm_path.name} of plugin {bundle.name!r}"
    if HANDLER not in exports:
        raise BundleError(f"{source} does not export {HANDLER} (see plugin-sdk/wit)")
    handler = exports[HANDLER].ty
    names = handler.exports(engine) if isinstance(handler, ComponentInstanceType) else {}
    missing = [n for n in _HANDLER_FUNCTIONS if n not in names]
    if missing:
        raise BundleError(f"{source}: {HANDLER} lacks {', '.join(missing)}")
    provided = {wit_interface(cap.name) for cap in CAPABILITIES}
    for name in ctype.imports(engine):
        if name.startswith("wasi:") or name in provided or name == wit_interface("types"):
            continue
        raise BundleError(f"{source} imports {name}, which this host does not provide")


class Registry:
    """The plugins of one host, loaded or not."""

    def __init__(self, runtime: Runtime, config: HostConfig, services: HostServices) -> None:
        self._runtime = runtime
        self._config = config
        self._services = services
        self._cache = CompiledCache(
            config.compiled_cache_dir, runtime.engine, runtime.settings.fingerprint()
        )
        self._current = _Generation()

    def load_all(self) -> list[PluginInfo]:
        """Discover and load every bundle; returns what happened to each.

        Loading again replaces the plugins as a whole once the new ones are ready; calls already
        running on the old ones finish there.
        """
        pins = self._pinned_dirs()
        reload = bool(self._current.plugins or self._current.unopened)
        self._services.audit.record("host.load", reload=reload)
        fresh = _Generation()
        claims: dict[str, list[_Claim]] = {}
        limits = self._config.bundles.limits()
        for plugin_dir, directory in _bundle_dirs(self._config.plugin_dirs):
            bundle = self._open(directory, limits, fresh)
            if bundle is not None:
                claims.setdefault(bundle.name, []).append(_Claim(bundle, plugin_dir))
        for name, claimants in claims.items():
            winner, refused = _settle_name(name, claimants, pins.get(name))
            for claim, reason in refused:
                version = claim.bundle.manifest.plugin.version
                directory = claim.bundle.directory
                fresh.unopened.append(PluginInfo(name, "failed", reason, directory, version))
                _log.warning("%s: %s", directory, reason)
                self._audit_outcome(fresh.unopened[-1], claim.bundle.manifest.security.checksum)
            if winner is not None:
                self._load_bundle(winner.bundle, fresh)
        old, self._current = self._current, fresh
        self._release_all(old)
        return self.infos()

    def infos(self) -> list[PluginInfo]:
        current = self._current
        return sorted(
            [loaded.info for loaded in current.plugins.values()] + current.unopened,
            key=lambda info: (info.name, str(info.directory)),
        )

    def runner(self, name: str) -> PluginRunner:
        current = self._current
        loaded = current.plugins.get(name)
        failed = [info for info in current.unopened if info.name == name]
        if loaded is None and failed:
            raise PluginUnavailable(f"plugin {name!r} failed to load: {failed[0].reason}")
        if loaded is None:
            known = ", ".join(sorted(current.plugins)) or "none"
            raise PluginNotFound(f"no plugin named {name!r} (loaded plugins: {known})")
        if loaded.runner is None:
            raise PluginUnavailable(
                f"plugin {name!r} is {loaded.info.state}: {loaded.info.reason}"
            ) from loaded.error
        return loaded.runner

    def _pinned_dirs(self) -> dict[str, Path]:
        """Each pinned name's plugin dir; a pin to a dir that is not searched is a config error."""
        pins: dict[str, Path] = {}
        for name, settings in self._config.plugins.items():
            if settings.pin is None:
                continue
            if not any(_same_dir(settings.pin.plugin_dir, d) for d in self._config.plugin_dirs):
                raise ConfigError(
                    f"plugins.{name}.pin.plugin_dir: {settings.pin.plugin_dir} is not one of "
                    "plugin_dirs"
                )
            pins[name] = settings.pin.plugin_dir
        return pins

    def _open(self, directory: Path, limits: BundleLimits, into: _Generation) -> Bundle | None:
        """The bundle, or None with the failure recorded under the directory's name."""
        try:
            return Bundle.open(directory, limits)
        except Exception as exc:  # one bundle can fail only itself, however it fails
            reason = describe_failure(exc)
            if not isinstance(exc, CorralError):
                reason = f"{directory}: {reason}"
                _log.debug("opening %s failed", directory, exc_info=exc)
            into.unopened.append(PluginInfo(directory.name, "failed", reason, directory))
            _log.warning("%s", reason)
            self._audit_outcome(into.unopened[-1])
            return None

    def _load_bundle(self, bundle: Bundle, into: _Generation) -> None:
        directory = bundle.directory
        base = PluginInfo(bundle.name, "failed", "", directory, bundle.manifest.plugin.version)
        settings = self._config.settings_for(bundle.name)
        if not settings.enabled:
            info = replace(base, state="disabled", reason="disabled in config")
            into.plugins[bundle.name] = _Loaded(info)
            self._audit_outcome(info, bundle.manifest.security.checksum)
            return
        loaded = _Loaded(base)
        into.plugins[bundle.name] = loaded
        try:
            self._load(bundle, loaded)
        except Exception as exc:  # one bundle can fail only itself, however it fails
            if not isinstance(exc, CorralError):
                _log.debug("plugin %s failed to load", bundle.name, exc_info=exc)
            self._release(loaded)
            loaded.info = replace(base, reason=describe_failure(exc))
            loaded.error = exc
            _log.warning("plugin %s failed to load: %s", bundle.name, loaded.info.reason)
        self._audit_outcome(loaded.info, bundle.manifest.security.checksum)

    def _audit_outcome(self, info: PluginInfo, checksum: str | None = None) -> None:
        """An audit line for what became of a bundle: plugin.loaded, .failed or .disabled."""
        self._services.audit.record(
            f"plugin.{info.state}",
            info.name,
            version=info.version or None,
            directory=None if info.directory is None else str(info.directory),
            checksum=checksum,
            reason=info.reason or None,
        )

    def _load(self, bundle: Bundle, loaded: _Loaded) -> None:
        name = bundle.name
        settings = self._config.settings_for(name)
        requested = bundle.manifest.requested_permissions
        granted = expand_permissions(settings.grant)
        missing = ", ".join(f'"{p}"' for p in sorted(requested - granted))
        if missing:
            plural = "s" if "," in missing else ""
            raise PermissionDenied(
                f"plugin {name!r} requests permission{plural} {missing}, which "
                f"{'are' if plural else 'is'} not granted; to grant "
                f"{'them' if plural else 'it'} add {'them' if plural else 'it'} to "
                f"plugins.{name}.grant in corral.yaml"
            )
        in_force = requested & granted
        options = settings.capability_options()
        interfaces = {}
        for capability in CAPABILITIES:
            context = PluginContext(
                name=name,
                manifest=bundle.manifest,
                granted=in_force,
                options={k: options[k] for k in capability.option_keys if k in options},
                plugin_config=settings.config,
                data_dir=self._config.data_dir,
                services=self._services,
            )
            try:
                state = capability.configure(context)
            except ConfigError as exc:
                raise ConfigError(f"{capability.name}: {exc}") from None
            loaded.capability_states.append((capability, state))
            interfaces[capability.name] = capability.host_functions(state)
        component, from_cache = self.compiled(bundle)
        check_contract(component, self._runtime, bundle)
        limits = effective_limits(
            bundle.manifest, settings.limits.merged_over(self._config.defaults)
        )
        loaded.runner = PluginRunner(
            self._runtime,
            name,
            component,
            limits,
            interfaces,
            in_force,
            plugin_logger(name),
            audit=self._services.audit,
        )
        loaded.runner.prepare()
        loaded.info = replace(
            loaded.info, state="loaded", permissions=in_force, from_cache=from_cache
        )
        _log.info(
            "plugin %s %s loaded%s", name, loaded.info.version, " (cached)" if from_cache else ""
        )

    def compiled(self, bundle: Bundle) -> tuple[Component, bool]:
        """The bundle's component, compiled or from the cache; and whether it was cached."""
        return self._cache.load(
            bundle.wasm_sha256, lambda: self._runtime.compile(bundle.read_verified_wasm())
        )

    def interface(self, bundle: Bundle) -> tuple[list[str], list[str]]:
        """The names a bundle's component imports and exports."""
        ctype = self.compiled(bundle)[0].type
        engine = self._runtime.engine
        return sorted(ctype.imports(engine)), sorted(ctype.exports(engine))

    def _release(self, loaded: _Loaded) -> None:
        if loaded.info.state == "loaded":
            self._services.audit.record("plugin.unloaded", loaded.info.name)
        if loaded.runner is not None:
            loaded.runner.close()
            loaded.runner = None
        for capability, state in loaded.capability_states:
            capability.close(state)  # type: ignore[attr-defined]
        loaded.capability_states.clear()

    def _release_all(self, generation: _Generation) -> None:
        for loaded in generation.plugins.values():
            self._release(loaded)

    def close(self) -> None:
        old, self._current = self._current, _Generation()
        self._release_all(old)
