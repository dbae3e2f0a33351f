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

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from wasmtime import Engine
from wasmtime.component import Component, ComponentInstanceType, FuncType

from ._cache import CompiledCache
from ._commands import CommandValidators
from ._contract import check_world
from ._errors import (
    BundleError,
    ConfigError,
    CorralError,
    PluginNotFound,
    PluginUnavailable,
    SignatureError,
    describe_failure,
)
from ._paths import same_dir
from ._settings_origin import SettingsOrigin
from ._units import parse_duration, parse_size
from ._validation import did_you_mean
from .bundle import Bundle, BundleLimits
from .capabilities import CAPABILITIES, PluginContext
from .capabilities.log import plugin_logger
from .config import LIMIT_CEILINGS, HostConfig, LimitOptions
from .host_services import HostServices
from .manifest import MANIFEST_FILENAME, CommandSpec, Manifest, commands_json
from .permissions import PluginPermissions, expand_permissions
from .runtime import PluginLimits, PluginRunner, Runtime
from .signing import Signer, TrustPolicy

__all__ = ["PluginInfo", "Registry"]

_log = logging.getLogger("corral.registry")

State = Literal["loaded", "failed", "disabled", "compiling"]


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
    signer: Signer | None = None
    """Who signed the bundle, when it carries a valid signature."""
    loaded_at: float | None = None
    """When the version in force was loaded (`time.time()`)."""
    last_error: str = ""
    """Why the latest update of a loaded plugin failed; the version in force keeps serving."""

    def as_json(self) -> dict[str, Any]:
        """What `plugins list --json` prints and ``GET /plugins`` serves for this plugin."""
        return {
            "name": self.name,
            "state": self.state,
            "version": self.version,
            "reason": self.reason,
            "last_error": self.last_error,
            "loaded_at": self.loaded_at,
            "directory": str(self.directory) if self.directory else None,
            "permissions": sorted(self.permissions),
            "signer": None if self.signer is None else str(self.signer),
            "commands": commands_json(self.commands),
        }

    concurrent_events: bool = False
    """The manifest lets `corral serve` deliver events while a scheduled job runs."""
    commands: Mapping[str, CommandSpec] = field(default_factory=dict)
    """The commands the manifest declares (others may exist, undeclared)."""


@dataclass
class _Loaded:
    info: PluginInfo
    runner: PluginRunner | None = None
    capability_states: list[tuple[object, object]] = field(default_factory=list)
    source: str = ""
    """What this entry was built from (bundle and settings): unchanged means nothing to reload."""
    rejected: str = ""
    """The source of the latest update that failed, not tried again until it changes."""
    error: Exception | None = None
    """Why it failed to load: the cause of the `PluginUnavailable` a call raises."""

    def showing(self, info: PluginInfo, rejected: str = "") -> _Loaded:
        """The same plugin, running the same version, described by `info`."""
        return _Loaded(info, self.runner, self.capability_states, self.source, rejected)


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
    signer: Signer | None


def _check_plugin_dirs(plugin_dirs: list[Path]) -> None:
    for plugin_dir in plugin_dirs:
        if not plugin_dir.is_dir():
            raise ConfigError(f"plugin dir {plugin_dir} does not exist or is not a directory")


def _bundle_dirs(plugin_dirs: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(plugin dir, bundle dir) for each subdirectory holding a manifest.yaml of any kind.

    A manifest that is a FIFO, a device or a symlink out of the bundle is listed too, so that
    opening it fails that bundle with a reason instead of hiding it.
    """
    _check_plugin_dirs(plugin_dirs)
    for plugin_dir in plugin_dirs:
        for child in sorted(plugin_dir.iterdir()):
            manifest = child / MANIFEST_FILENAME
            try:
                listed = child.is_dir() and (manifest.is_symlink() or manifest.exists())
            except OSError:  # e.g. a bundle dir nobody may search: opening it says why
                listed = True
            if listed:
                yield plugin_dir, child


def _settle_name(
    name: str, claims: list[_Claim], pinned_dir: Path | None, origin: SettingsOrigin
) -> tuple[_Claim | None, list[tuple[_Claim, str]]]:
    """Which claim gets the name, and why each of the others does not."""
    refused: list[tuple[_Claim, str]] = []
    eligible: list[_Claim] = []
    for claim in claims:
        if pinned_dir is None or same_dir(claim.plugin_dir, pinned_dir):
            eligible.append(claim)
        else:
            pin = f"plugin name {name!r} is pinned to {pinned_dir} (plugins.{name}.pin.plugin_dir)"
            refused.append((claim, pin))
    if len(eligible) <= 1:
        return (eligible[0] if eligible else None), refused
    if len({c.plugin_dir for c in eligible}) == len(eligible):
        fix = "pin the name to one plugin dir with " + origin.setting(
            f"plugins.{name}.pin.plugin_dir"
        )
    else:
        fix = f"keep one bundle named {name!r} per plugin dir"
    for claim in eligible:
        others = ", ".join(str(c.bundle.directory) for c in eligible if c is not claim)
        reason = f"plugin name {name!r} is also claimed by {others}; none of them is loaded: {fix}"
        refused.append((claim, reason))
    return None, refused


def _stamp(directory: Path) -> object:
    """What changes when any file directly in `directory` is written, replaced or renamed."""
    entries = []
    with os.scandir(directory) as listing:
        for entry in listing:
            info = entry.stat(follow_symlinks=False)
            entries.append((entry.name, info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode))
    return frozenset(entries)


def _plain_top_level(bundle: Bundle) -> bool:
    files = (bundle.directory / MANIFEST_FILENAME, bundle.directory / bundle.wasm_path.name)
    return bundle.wasm_path.parent == bundle.directory.resolve() and not any(
        f.is_symlink() for f in files
    )


def effective_limits(
    manifest: Manifest, operator: LimitOptions, origin: SettingsOrigin | None = None
) -> PluginLimits:
    """What the manifest asks, capped by the operator's ceilings (built-in ones where unset).

    A manifest asking for more than a ceiling gets the ceiling (and a log line): the limits are
    the operator's policy, and a plugin that truly needs more fails with a trap that names the
    limit, which the operator can then raise for that plugin alone.
    """
    ceilings = operator.merged_over(LIMIT_CEILINGS)
    assert ceilings.memory_limit is not None and ceilings.execution_timeout is not None
    runtime, name = manifest.runtime, manifest.name
    memory = runtime.memory_limit_bytes
    origin = origin or SettingsOrigin()
    if memory > parse_size(ceilings.memory_limit):
        _log_capped(name, "memory_limit", runtime.memory_limit, ceilings.memory_limit, origin)
        memory = parse_size(ceilings.memory_limit)
    timeout = runtime.execution_timeout_s
    if timeout > parse_duration(ceilings.execution_timeout):
        _log_capped(
            name, "execution_timeout", runtime.execution_timeout, ceilings.execution_timeout, origin
        )
        timeout = parse_duration(ceilings.execution_timeout)
    return PluginLimits(
        memory_bytes=memory,
        timeout_s=timeout,
        fuel=fuel_budget(manifest, operator),
        max_instances=ceilings.max_instances or 1,
    )


def fuel_budget(manifest: Manifest, operator: LimitOptions) -> int | None:
    """The per-call fuel budget: the lower of the manifest's and the operator's, if any."""
    fuels = [f for f in (manifest.runtime.fuel, operator.fuel) if f is not None]
    return min(fuels) if fuels else None


def _log_capped(plugin: str, field: str, asked: str, ceiling: str, origin: SettingsOrigin) -> None:
    # Info, not a warning: capping is the operator's policy working as configured.
    _log.info(
        "plugin %s: manifest asks for runtime.%s %s, over the operator's ceiling of %s; "
        "using %s (raise it with %s)",
        plugin,
        field,
        asked,
        ceiling,
        ceiling,
        origin.setting(f"plugins.{plugin}.limits.{field}", asked),
    )


def _compile_key(bundle: Bundle, metered: bool) -> str:
    """What compiles and compiled components not yet loaded are kept under."""
    return f"{bundle.wasm_sha256}:{'metered' if metered else 'unmetered'}"


def check_contract(component: Component, engine: Engine, bundle: Bundle) -> None:
    """Refuse a component that does not fit the ``corral:plugin`` world (see `_contract`)."""
    source = f"{bundle.wasm_path.name} of plugin {bundle.name!r}"
    check_world(component.type, engine, source)


class Registry:
    """The plugins of one host, loaded or not."""

    def __init__(self, runtime: Runtime, config: HostConfig, services: HostServices) -> None:
        self._runtime = runtime
        self._config = config
        self._services = services
        # A component compiles for one engine: with fuel metered or without (see `runtime`).
        self._caches = {
            metered: CompiledCache(
                config.compiled_cache_dir,
                runtime.engine(metered),
                runtime.settings.fingerprint(metered),
                parse_size(config.cache_max_size),
            )
            for metered in (False, True)
        }
        self._current = _Generation()
        self._refreshing = threading.Lock()
        self._opened: dict[Path, tuple[object, Bundle]] = {}
        # Compiles in flight and compiled components not yet loaded, by `_compile_key`.
        self._compiling: set[str] = set()
        self._fresh: dict[str, Component] = {}
        self._compile_failures: dict[str, str] = {}  # by wasm sha256
        self._unmatched: list[str] = []

    def load_all(self) -> list[PluginInfo]:
        """Discover and load every bundle; returns what happened to each.

        Loading again replaces the plugins as a whole once the new ones are ready; calls already
        running on the old ones finish there.
        """
        with self._refreshing:
            reload = bool(self._current.plugins or self._current.unopened)
            # Before the audit log opens: a mistyped dir must not leave a data dir behind.
            _check_plugin_dirs(self._config.plugin_dirs)
            self._services.audit.record("host.load", reload=reload)
            self._compile_failures.clear()  # loading again tries every compile again
            fresh = _Generation()
            for claim in self._discover(fresh).values():
                fresh.plugins[claim.bundle.name] = self._load_bundle(claim)
            old, self._current = self._current, fresh
            for loaded in old.plugins.values():
                self._retire(loaded)
        return self.infos()

    def refresh(
        self, config: HostConfig | None = None, on_compiled: Callable[[], None] | None = None
    ) -> list[PluginInfo]:
        """Bring the plugins in line with the plugin dirs (and `config`), touching what changed.

        Unchanged plugins keep running untouched; a removed bundle is unloaded; a new or changed
        one (its bundle or its settings) is loaded beside the version in force and swapped in
        once ready, one plugin at a time, so calls already running finish on the old version.
        When the update fails the old version keeps serving and `last_error` says why. Plugins
        whose component is compiled already go first; one being compiled shows ``compiling``.
        With `on_compiled`, compiles run in threads of their own and this returns without
        waiting for them; `on_compiled` is called as each ends, and the next refresh loads it.
        """
        with self._refreshing:
            previous = self._config
            self._config = config or previous
            found = _Generation()
            try:
                winners = self._discover(found)
            except BaseException:  # e.g. a plugin dir gone: nothing changes
                self._config = previous
                raise
            current = self._current
            serving = {p.info.directory: p for p in current.plugins.values() if p.runner}
            kept: dict[str, _Loaded] = {}
            unopened: list[PluginInfo] = []
            for info in found.unopened:
                old = serving.get(info.directory)
                if old is not None and old.info.name not in winners:
                    kept[old.info.name] = old.showing(replace(old.info, last_error=info.reason))
                else:
                    unopened.append(info)
            changed: list[_Claim] = []
            for name, claim in winners.items():
                old = current.plugins.get(name)
                source = self._source(claim)
                if old is None:
                    changed.append(claim)
                elif old.source == source and old.info.last_error:  # the failed update undone
                    kept[name] = old.showing(replace(old.info, last_error=""))
                elif old.source == source or old.rejected == source:
                    kept[name] = old
                else:
                    changed.append(claim)
                    kept[name] = old  # serves until its successor is ready
            self._current = _Generation(kept, unopened)
            removed = sorted(current.plugins.keys() - kept.keys())
            if changed or removed or self._config is not previous:
                self._services.audit.record(
                    "host.refresh",
                    config_changed=self._config is not previous,
                    changed=sorted(claim.bundle.name for claim in changed),
                    removed=removed,
                )
            for name, old in current.plugins.items():
                if name not in kept:
                    _log.info("plugin %s unloaded", name)
                    self._retire(old)
            changed.sort(key=lambda claim: not self._has_compiled(claim.bundle))
            for claim in changed:
                self._swap_in(claim, on_compiled)
            for unused in self._fresh.keys() - {
                self._compile_key(c.bundle) for c in winners.values()
            }:
                del self._fresh[unused]  # compiled for a bundle removed (or re-limited) meanwhile
        return self.infos()

    def _swap_in(self, claim: _Claim, on_compiled: Callable[[], None] | None) -> None:
        """Load a bundle beside the version in force, then swap it in (or keep the old one)."""
        bundle = claim.bundle
        name = bundle.name
        old = self._current.plugins.get(name)
        if self._compile_key(bundle) in self._compiling:
            return  # the refresh after its compile loads it
        if not self._has_compiled(bundle):
            if old is not None and old.runner is not None:
                placeholder = old.showing(replace(old.info, state="compiling"))
            else:
                version = bundle.manifest.plugin.version
                info = PluginInfo(name, "compiling", "", bundle.directory, version)
                placeholder = _Loaded(info)
            _log.info("plugin %s %s compiling", name, bundle.manifest.plugin.version)
            self._publish(name, placeholder)
            if on_compiled is not None:
                self._compile_in_background(bundle, on_compiled)
                return
        new = self._load_bundle(claim)
        if new.info.state == "failed" and old is not None and old.runner is not None:
            _log.warning("plugin %s keeps %s: %s", name, old.info.version, new.info.reason)
            info = replace(old.info, state="loaded", last_error=new.info.reason)
            self._publish(name, old.showing(info, rejected=new.source))
            return
        self._publish(name, new)
        if old is not None:
            self._retire(old)

    def _compile_in_background(self, bundle: Bundle, on_compiled: Callable[[], None]) -> None:
        # For the engine the settings in force now choose: a refresh meanwhile may change them.
        metered = self._meters_fuel(bundle)
        key = _compile_key(bundle, metered)
        self._compiling.add(key)

        def compile_() -> None:
            try:
                # Kept until loaded, in case the cache could not store it (a read-only disk).
                self._fresh[key] = self.compiled(bundle, metered)[0]
            except Exception as exc:  # reported when the next refresh loads the bundle
                self._compile_failures[bundle.wasm_sha256] = describe_failure(exc)
            finally:
                self._compiling.discard(key)
                on_compiled()

        threading.Thread(target=compile_, name=f"corral-compile-{bundle.name}", daemon=True).start()

    def _publish(self, name: str, loaded: _Loaded) -> None:
        """Swap one entry: readers see the old generation or the new, never a mix."""
        current = self._current
        self._current = _Generation({**current.plugins, name: loaded}, current.unopened)

    def _source(self, claim: _Claim) -> str:
        bundle = claim.bundle
        settings = self._config.settings_for(bundle.name)
        return json.dumps(
            [
                str(bundle.directory),
                bundle.wasm_sha256,
                str(claim.signer),
                bundle.manifest.model_dump(mode="json"),
                # webhooks and schedules are the server's business, not the loaded plugin's
                settings.model_dump(mode="json", exclude={"webhooks", "schedule"}),
                self._config.defaults.model_dump(mode="json"),
            ],
            sort_keys=True,
            default=str,
        )

    def _discover(self, into: _Generation) -> dict[str, _Claim]:
        """Open every bundle and settle the names; failures are recorded in `into.unopened`."""
        pins = self._pinned_dirs()
        claims: dict[str, list[_Claim]] = {}
        limits = self._config.bundles.limits()
        policies = self._config.trust.policies(self._config.plugin_dirs)
        listed = set()
        for plugin_dir, directory in _bundle_dirs(self._config.plugin_dirs):
            listed.add(directory)
            claim = self._open(plugin_dir, directory, limits, policies[plugin_dir], into)
            if claim is not None:
                claims.setdefault(claim.bundle.name, []).append(claim)
        for gone in self._opened.keys() - listed:
            del self._opened[gone]
        winners: dict[str, _Claim] = {}
        for name, claimants in claims.items():
            origin = self._config.origin
            winner, refused = _settle_name(name, claimants, pins.get(name), origin)
            for claim, reason in refused:
                version = claim.bundle.manifest.plugin.version
                directory = claim.bundle.directory
                into.unopened.append(PluginInfo(name, "failed", reason, directory, version))
            if winner is not None:
                winners[name] = winner
        self._check_settings_match({*claims, *(info.name for info in into.unopened)})
        # Each refresh opens every bundle again; a broken one is reported once, not each time.
        known = {(info.directory, info.reason) for info in self._current.unopened}
        for info in into.unopened:
            if (info.directory, info.reason) not in known:
                _log.warning("bundle %s failed: %s", info.directory, info.reason)
                self._audit_outcome(info)
        return winners

    def _check_settings_match(self, found: set[str]) -> None:
        """Warn about ``plugins:`` entries that name no bundle found (a typo, or a bundle that
        went missing): their grants and options would otherwise be ignored without a word."""
        origin = self._config.origin
        unmatched = [
            f"{origin.where(f'plugins.{name}')} names no plugin found in the plugin dirs"
            + did_you_mean(name, found)
            for name in self._config.plugins
            if name not in found
        ]
        for message in unmatched:
            if message not in self._unmatched:
                _log.warning("%s", message)
        self._unmatched = unmatched

    def unmatched_settings(self) -> list[str]:
        """One warning per ``plugins:`` entry that names no bundle found at the last discovery."""
        return list(self._unmatched)

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
            why = f": {loaded.info.reason}" if loaded.info.reason else ""
            raise PluginUnavailable(
                f"plugin {name!r} is {loaded.info.state}{why}"
            ) from loaded.error
        return loaded.runner

    def _pinned_dirs(self) -> dict[str, Path]:
        """Each pinned name's plugin dir; a pin to a dir that is not searched is a config error."""
        pins: dict[str, Path] = {}
        for name, settings in self._config.plugins.items():
            if settings.pin is None or settings.pin.plugin_dir is None:
                continue
            if not any(same_dir(settings.pin.plugin_dir, d) for d in self._config.plugin_dirs):
                raise ConfigError(
                    f"plugins.{name}.pin.plugin_dir: {settings.pin.plugin_dir} is not one of "
                    "plugin_dirs"
                )
            pins[name] = settings.pin.plugin_dir
        return pins

    def _open(
        self,
        plugin_dir: Path,
        directory: Path,
        limits: BundleLimits,
        trust: TrustPolicy,
        into: _Generation,
    ) -> _Claim | None:
        """The bundle and its signer, or None with the failure recorded.

        Signatures are checked here, before anything of the bundle is compiled. A bundle whose
        files are as they were (same names, sizes, inodes, mtimes) when it was last opened and
        verified is not read and hashed again: a refresh after one bundle was dropped in costs
        one bundle's checksum, not all of them. Only bundles whose manifest and component are
        plain files at the top of the bundle are remembered so; the signature is checked every
        time, since the operator's trust rules may have changed.
        """
        name = directory.name  # until the manifest says otherwise
        try:
            stamp = _stamp(directory)  # before opening: a change while opening shows next time
            known = self._opened.pop(directory, None)
            if known is not None and known[0] == stamp and known[1].limits == limits:
                bundle = known[1]
                self._opened[directory] = known
            else:
                bundle = Bundle.open(directory, limits)
                if _plain_top_level(bundle):
                    self._opened[directory] = (stamp, bundle)
            name = bundle.name
            signer = trust.signer(bundle)
            self._check_pinned_signer(bundle, signer)
            return _Claim(bundle, plugin_dir, signer)
        except Exception as exc:  # one bundle can fail only itself, however it fails
            reason = describe_failure(exc)
            if not isinstance(exc, CorralError):
                reason = f"{directory}: {reason}"
                _log.debug("opening %s failed", directory, exc_info=exc)
            into.unopened.append(PluginInfo(name, "failed", reason, directory))
            return None

    def _check_pinned_signer(self, bundle: Bundle, signer: Signer | None) -> None:
        pin = self._config.settings_for(bundle.name).pin
        if pin is None or pin.signer is None or (signer is not None and signer.name == pin.signer):
            return
        found = "not signed" if signer is None else f"signed by {signer}"
        raise SignatureError(
            f"{bundle.directory}: plugin name {bundle.name!r} is pinned to signer {pin.signer!r} "
            f"(plugins.{bundle.name}.pin.signer), but this bundle is {found}"
        )

    def _load_bundle(self, claim: _Claim) -> _Loaded:
        bundle = claim.bundle
        directory = bundle.directory
        version = bundle.manifest.plugin.version
        base = PluginInfo(
            bundle.name,
            "failed",
            "",
            directory,
            version,
            signer=claim.signer,
            commands=bundle.manifest.commands,
        )
        settings = self._config.settings_for(bundle.name)
        source = self._source(claim)
        if not settings.enabled:
            info = replace(base, state="disabled", reason="disabled in config")
            self._audit_outcome(info, bundle.manifest.security.checksum)
            return _Loaded(info, source=source)
        loaded = _Loaded(base, source=source)
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
        return loaded

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
        permissions = PluginPermissions(
            name,
            requested=bundle.manifest.requested_permissions,
            granted=expand_permissions(settings.grant),
            origin=self._config.origin,
        )
        permissions.check_requested_are_granted()
        in_force = permissions.in_force
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
                origin=self._config.origin,
            )
            try:
                state = capability.configure(context)
            except ConfigError as exc:
                raise ConfigError(f"{capability.name}: {exc}") from None
            loaded.capability_states.append((capability, state))
            interfaces[capability.name] = capability.host_functions(state)
        component, from_cache = self.checked(bundle)
        limits = effective_limits(
            bundle.manifest, settings.limits.merged_over(self._config.defaults), self._config.origin
        )
        loaded.runner = PluginRunner(
            self._runtime,
            name,
            component,
            limits,
            interfaces,
            permissions,
            plugin_logger(name),
            audit=self._services.audit,
            commands=CommandValidators(name, bundle.manifest.commands),
        )
        loaded.runner.prepare()
        loaded.info = replace(
            loaded.info,
            state="loaded",
            permissions=in_force,
            from_cache=from_cache,
            loaded_at=time.time(),
            concurrent_events=bundle.manifest.runtime.concurrent_events,
        )
        _log.info(
            "plugin %s %s loaded%s", name, loaded.info.version, " (cached)" if from_cache else ""
        )

    def _meters_fuel(self, bundle: Bundle) -> bool:
        """Whether the bundle runs (and so compiles) for the engine that meters fuel."""
        operator = self._config.settings_for(bundle.name).limits
        return fuel_budget(bundle.manifest, operator.merged_over(self._config.defaults)) is not None

    def _compile_key(self, bundle: Bundle) -> str:
        return _compile_key(bundle, self._meters_fuel(bundle))

    def _has_compiled(self, bundle: Bundle) -> bool:
        """Whether loading the bundle needs no compile (or would fail at once)."""
        sha, metered = bundle.wasm_sha256, self._meters_fuel(bundle)
        return (
            self._caches[metered].has(sha)
            or _compile_key(bundle, metered) in self._fresh
            or sha in self._compile_failures
        )

    def compiled(self, bundle: Bundle, metered: bool | None = None) -> tuple[Component, bool]:
        """The bundle's component, compiled or from the cache; and whether it was cached.
        `metered` picks the engine; by default the one the bundle's settings choose."""
        failure = self._compile_failures.get(bundle.wasm_sha256)
        if failure is not None:
            raise BundleError(f"{bundle.wasm_path}: does not compile: {failure}")
        if metered is None:
            metered = self._meters_fuel(bundle)
        fresh = self._fresh.pop(_compile_key(bundle, metered), None)
        if fresh is not None:
            return fresh, False
        return self._caches[metered].load(
            bundle.wasm_sha256,
            lambda: self._runtime.compile(bundle.read_verified_wasm(), metered),
        )

    def checked(self, bundle: Bundle) -> tuple[Component, bool]:
        """`compiled`, refused (`BundleError`) unless it fits the ``corral:plugin`` world."""
        metered = self._meters_fuel(bundle)
        component, from_cache = self.compiled(bundle, metered)
        check_contract(component, self._runtime.engine(metered), bundle)
        return component, from_cache

    def interface(self, bundle: Bundle) -> tuple[list[str], dict[str, list[str]]]:
        """The interfaces a bundle's component imports, and what it exports: each exported
        interface with the names of its functions (a function exported alone: no names)."""
        metered = self._meters_fuel(bundle)
        ctype = self.compiled(bundle, metered)[0].type
        engine = self._runtime.engine(metered)
        exports: dict[str, list[str]] = {}
        for name, item in sorted(ctype.exports(engine).items()):
            kind = item.ty
            members = kind.exports(engine) if isinstance(kind, ComponentInstanceType) else {}
            exports[name] = sorted(m for m, v in members.items() if isinstance(v.ty, FuncType))
        return sorted(ctype.imports(engine)), exports

    def _release(self, loaded: _Loaded) -> None:
        if loaded.info.state == "loaded":
            self._services.audit.record("plugin.unloaded", loaded.info.name)
        if loaded.runner is not None:
            loaded.runner.close()
            loaded.runner = None
        for capability, state in loaded.capability_states:
            capability.close(state)  # type: ignore[attr-defined]
        loaded.capability_states.clear()

    def _retire(self, loaded: _Loaded) -> None:
        """Release a replaced or removed plugin once the calls still running on it are done."""
        runner = loaded.runner
        if runner is None:
            self._release(loaded)
            return
        runner.close()

        def release_when_idle() -> None:
            runner.wait_closed(runner.limits.timeout_s + 1.0)
            self._release(loaded)

        threading.Thread(
            target=release_when_idle, name=f"corral-retire-{runner.name}", daemon=True
        ).start()

    def close(self) -> None:
        old, self._current = self._current, _Generation()
        for loaded in old.plugins.values():
            self._release(loaded)
