"""The operator's host configuration, `corral.yaml`.

```yaml
plugin_dirs: [plugins]          # searched in order
data_dir: .corral               # SQLite stores, audit log
cache_dir: null                 # compiled components; default: the per-user cache dir
cache_max_size: 1GB             # least recently used compiled components go beyond it
engine:
  max_wasm_stack: 1MB
bundles:                        # what reading one bundle may cost
  max_manifest_size: 1MiB
  max_component_size: 256MiB
trust:                          # signed bundles (see corral.signing)
  keys:
    - {name: acme, key: "ed25519:..."}
    - {name: ops, file: keys/ops.pub}
  require_signatures: false     # for every plugin dir, unless the dir says otherwise
  plugin_dirs:
    vendor: {require_signatures: true, signers: [acme]}
defaults:                       # ceilings for every plugin (the manifest may ask for less)
  memory_limit: 256MB           # built-in ceilings where unset: LIMIT_CEILINGS
  execution_timeout: 60s
  max_instances: 4
plugins:
  jira-sync:
    enabled: true
    grant: [network.http.outbound, config.read, task.read_write, kv]
    config: {project: OPS}      # validated against the manifest's config_schema
    limits: {execution_timeout: 10s}
    pin: {plugin_dir: plugins, signer: acme}  # only a bundle in this dir, signed by acme
    http: {...}                 # options owned by capabilities (see capabilities/*)
    webhooks: {secret: env:JIRA_WEBHOOK_SECRET}           # corral serve: POST /webhooks/jira-sync
    schedule: [{every: 5m, command: sync, input: {mode: incremental}}]
serve: {...}                    # corral serve: address, token, reloads, event retries, breaker
```

Relative paths are relative to the directory of the config file. Two bundles claiming one
plugin name are both refused unless a pin decides between them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ._cron import CronExpression
from ._errors import ConfigError
from ._paths import same_dir
from ._settings_origin import SettingsOrigin
from ._units import format_size, parse_duration, parse_size
from ._validation import (
    FieldProblem,
    check_type,
    load_yaml_mapping,
    unknown_key,
    validate_model,
)
from .bundle import BundleLimits
from .capabilities import CAPABILITIES
from .capabilities.http._secrets import split_secret_ref
from .permissions import check_permission_names
from .signing import PublicKey, TrustedKey, TrustPolicy

__all__ = [
    "LIMIT_CEILINGS",
    "BreakerOptions",
    "BundleOptions",
    "EngineOptions",
    "EventOptions",
    "HostConfig",
    "LimitOptions",
    "PinOptions",
    "PluginSettings",
    "ScheduleEntry",
    "ServeOptions",
    "TrustOptions",
    "WebhookOptions",
    "default_cache_dir",
    "load_host_config",
]

CACHE_DIR_ENV = "CORRAL_CACHE_DIR"

_CAPABILITY_OPTIONS = {key: kind for cap in CAPABILITIES for key, kind in cap.option_types.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitOptions(_Strict):
    """Ceilings the operator sets on a plugin's limits; a manifest may ask for less, never more.

    Unset means the next level up: ``plugins.<name>.limits``, then ``defaults``, then
    `LIMIT_CEILINGS`.
    """

    memory_limit: str | None = None
    execution_timeout: str | None = None
    fuel: int | None = Field(default=None, gt=0)
    max_instances: int | None = Field(default=None, ge=1, le=64)

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value

    @field_validator("execution_timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f'"{value}" must be longer than zero')
        return value

    def merged_over(self, base: LimitOptions) -> LimitOptions:
        """These options, with `base` filling in what is unset."""
        return LimitOptions(
            **{k: v if v is not None else getattr(base, k) for k, v in self.model_dump().items()}
        )


LIMIT_CEILINGS = LimitOptions(memory_limit="256MB", execution_timeout="60s", max_instances=4)
"""The ceilings where the operator set none: a manifest alone cannot ask for more. No fuel
ceiling: the execution timeout already bounds a call, and fuel costs differ per toolchain."""


class EngineOptions(_Strict):
    max_wasm_stack: str = "1MB"

    @field_validator("max_wasm_stack")
    @classmethod
    def _size(cls, value: str) -> str:
        if parse_size(value) < 64 << 10:
            raise ValueError(f'"{value}" is too small; at least 64KB')
        return value


def _positive_size(value: str) -> str:
    if parse_size(value) <= 0:
        raise ValueError(f'"{value}" must be larger than zero')
    return value


def _positive_duration(value: str) -> str:
    if parse_duration(value) <= 0:
        raise ValueError(f'"{value}" must be longer than zero')
    return value


def _secret_ref(value: str | None) -> str | None:
    if value is not None:
        split_secret_ref(value)
    return value


_BUNDLE_DEFAULTS = BundleLimits()


class BundleOptions(_Strict):
    """``bundles:``: caps on reading a bundle, checked with `stat` before anything is read."""

    max_manifest_size: str = format_size(_BUNDLE_DEFAULTS.max_manifest_bytes)
    max_component_size: str = format_size(_BUNDLE_DEFAULTS.max_component_bytes)

    _sizes = field_validator("max_manifest_size", "max_component_size")(_positive_size)

    def limits(self) -> BundleLimits:
        return BundleLimits(
            max_manifest_bytes=parse_size(self.max_manifest_size),
            max_component_bytes=parse_size(self.max_component_size),
        )


class PinOptions(_Strict):
    """``plugins.<name>.pin``: which bundle may take the name when several claim it.

    A bundle outside the pin is refused, so a bundle dropped into another plugin dir, or signed
    by someone else, cannot take over the name with its grants, credentials and stored data.
    """

    plugin_dir: Path | None = Field(
        default=None, description="One of plugin_dirs; relative to the config file."
    )
    signer: str | None = Field(
        default=None, description="The name of a trust.keys entry that must have signed it."
    )

    @model_validator(mode="after")
    def _something(self) -> PinOptions:
        if self.plugin_dir is None and self.signer is None:
            raise ValueError("a pin needs plugin_dir, signer or both")
        return self


class TrustedKeyOptions(_Strict):
    """One entry of ``trust.keys``: a name and the public key, inline or in a file."""

    name: str = Field(min_length=1)
    key: str | None = Field(default=None, description='"ed25519:..." as `corral keygen` prints')
    file: Path | None = Field(default=None, description="A .pub file; relative to the config file.")

    @model_validator(mode="after")
    def _one_source(self) -> TrustedKeyOptions:
        if (self.key is None) == (self.file is None):
            raise ValueError("give the public key as exactly one of key or file")
        if self.key is not None:
            PublicKey.parse(self.key, "key")
        return self

    def trusted(self, where: str) -> TrustedKey:
        if self.key is not None:
            return TrustedKey(self.name, PublicKey.parse(self.key, where))
        assert self.file is not None  # _one_source
        return TrustedKey(self.name, PublicKey.read(self.file))


class DirTrustOptions(_Strict):
    """``trust.plugin_dirs.<dir>``: one plugin dir's own signature rules."""

    require_signatures: bool | None = Field(default=None, description="Default: trust's.")
    signers: list[str] | None = Field(
        default=None, description="Names from trust.keys accepted here; default: all of them."
    )


class TrustOptions(_Strict):
    """``trust:``: the public keys the operator trusts and where signatures are required."""

    keys: list[TrustedKeyOptions] = Field(default_factory=list)
    require_signatures: bool = False
    plugin_dirs: dict[Path, DirTrustOptions] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_names(self) -> TrustOptions:
        names = [k.name for k in self.keys]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"key names must be unique: {', '.join(twice)}")
        for directory, options in self.plugin_dirs.items():
            unknown = sorted(set(options.signers or ()) - set(names))
            if unknown:
                raise ValueError(
                    f"plugin_dirs.{directory}.signers: {', '.join(unknown)} not in trust.keys"
                )
        return self

    def keyring(self) -> tuple[TrustedKey, ...]:
        """The trusted keys; key files are read here, so errors name them."""
        return tuple(key.trusted(f"trust.keys[{i}].key") for i, key in enumerate(self.keys))

    def policy(self, plugin_dir: Path, keys: tuple[TrustedKey, ...]) -> TrustPolicy:
        """The rules for bundles in `plugin_dir` (the global ones where it has none of its own)."""
        own = next((o for d, o in self.plugin_dirs.items() if same_dir(d, plugin_dir)), None)
        if own is None:
            return TrustPolicy(keys, self.require_signatures)
        required = self.require_signatures
        if own.require_signatures is not None:
            required = own.require_signatures
        signers = None if own.signers is None else frozenset(own.signers)
        return TrustPolicy(keys, required, signers, f"trust.plugin_dirs.{plugin_dir}")

    def policies(self, plugin_dirs: list[Path]) -> dict[Path, TrustPolicy]:
        """The rules of each plugin dir."""
        for directory in self.plugin_dirs:
            if not any(same_dir(directory, d) for d in plugin_dirs):
                raise ConfigError(f"trust.plugin_dirs: {directory} is not one of plugin_dirs")
        keys = self.keyring()
        return {plugin_dir: self.policy(plugin_dir, keys) for plugin_dir in plugin_dirs}

    def resolved(self, base: Path) -> TrustOptions:
        return self.model_copy(
            update={
                "keys": [
                    k if k.file is None else k.model_copy(update={"file": base / k.file})
                    for k in self.keys
                ],
                "plugin_dirs": {base / d: o for d, o in self.plugin_dirs.items()},
            }
        )


class WebhookOptions(_Strict):
    """``plugins.<name>.webhooks``: how ``POST /webhooks/<name>`` authenticates its sender.

    `secret` checks an ``X-Hub-Signature(-256): sha256=<hex HMAC of the body>`` header; `token`
    (for senders that cannot sign, such as Jira's app webhooks) must be given as ``?token=`` in
    the URL. Both are secret references (``env:NAME`` or ``file:PATH``); a plugin with neither
    accepts no webhooks.
    """

    secret: str | None = None
    token: str | None = None
    max_body: str = "1MB"

    _refs = field_validator("secret", "token")(_secret_ref)

    _size = field_validator("max_body")(_positive_size)

    @model_validator(mode="after")
    def _authenticated(self) -> WebhookOptions:
        if self.secret is None and self.token is None:
            raise ValueError("give a secret (signed webhooks) or a token (in the URL), or both")
        return self


class ScheduleEntry(_Strict):
    """One entry of ``plugins.<name>.schedule``: run `command` with `input` every so often."""

    every: str | None = Field(default=None, description='An interval such as "5m".')
    cron: str | None = Field(default=None, description='Five cron fields in UTC: "*/5 * * * *".')
    command: str
    input: Any = None

    _every = field_validator("every")(
        lambda value: None if value is None else _positive_duration(value)
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            CronExpression.parse(value)
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleEntry:
        if (self.every is None) == (self.cron is None):
            raise ValueError('give exactly one of "every" and "cron"')
        return self

    @property
    def job_name(self) -> str:
        """What identifies this job across restarts (its last run is stored under it)."""
        timing = f"every {self.every}" if self.every is not None else f"at {self.cron}"
        if self.input is None:
            return f"{self.command} {timing}"
        return f"{self.command} {timing} {json.dumps(self.input, sort_keys=True)}"


class PluginSettings(BaseModel):
    """``plugins.<name>`` in corral.yaml. Keys beyond these belong to capabilities."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool = True
    grant: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    limits: LimitOptions = Field(default_factory=LimitOptions)
    pin: PinOptions | None = None
    webhooks: WebhookOptions | None = None
    schedule: list[ScheduleEntry] = Field(default_factory=list)

    _known = field_validator("grant")(check_permission_names)

    @model_validator(mode="after")
    def _capability_options(self) -> PluginSettings:
        """The keys capabilities own are validated here, with the rest of the file, so a typo
        in any plugin's options stops the host at startup, not when that plugin loads."""
        for key, value in (self.model_extra or {}).items():
            if key not in _CAPABILITY_OPTIONS:
                known = [*type(self).model_fields, *_CAPABILITY_OPTIONS]
                raise FieldProblem((key,), unknown_key(key, known))
            if value is not None:  # an empty `http:` means the defaults
                try:
                    check_type(_CAPABILITY_OPTIONS[key], value)
                except FieldProblem as problem:
                    raise FieldProblem((key, *problem.location), str(problem)) from None
        return self

    def capability_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EventOptions(_Strict):
    """``serve.events``: how the server retries webhook events a plugin fails to take."""

    max_attempts: int = Field(default=8, ge=1, description="Attempts before an event is dead.")
    retry_backoff: str = Field(default="1s", description="Wait after the first failure; doubles.")
    max_backoff: str = Field(default="5m", description="The longest wait between attempts.")

    _durations = field_validator("retry_backoff", "max_backoff")(_positive_duration)


class BreakerOptions(_Strict):
    """``serve.breaker``: when a plugin that keeps trapping is cut off, and for how long."""

    failures: int = Field(default=5, ge=1, description="Traps or timeouts in a row that open it.")
    open_for: str = Field(default="5s", description="The first time it stays open; doubles.")
    max_open_for: str = Field(default="5m", description="The longest time it stays open.")

    _durations = field_validator("open_for", "max_open_for")(_positive_duration)


class ServeOptions(_Strict):
    """``serve:``: the long-running server (`corral serve`).

    The management endpoints (everything but ``/webhooks``, ``/healthz`` and ``/readyz``) need
    ``Authorization: Bearer <token>`` when `token` is set; binding beyond loopback requires it.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token: str | None = Field(default=None, description="A secret reference: env:NAME, file:PATH.")
    grace_period: str = Field(
        default="30s", description="How long calls in flight may finish after SIGTERM/SIGINT."
    )
    reload_debounce: str = Field(
        default="200ms", description="Quiet time after a change in a plugin dir before reloading."
    )
    events: EventOptions = Field(default_factory=EventOptions)
    breaker: BreakerOptions = Field(default_factory=BreakerOptions)

    _token = field_validator("token")(_secret_ref)

    @field_validator("grace_period", "reload_debounce")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) < 0:
            raise ValueError(f'"{value}" must not be negative')
        return value


class HostConfig(_Strict):
    """A whole corral.yaml; paths are absolute once loaded through `load_host_config`."""

    plugin_dirs: list[Path] = Field(default_factory=list)
    data_dir: Path = Path(".corral")
    cache_dir: Path | None = Field(
        default=None,
        description="Compiled-component cache; default $CORRAL_CACHE_DIR, else the per-user "
        "cache dir (e.g. ~/.cache/corral/compiled on Linux).",
    )
    cache_max_size: str = Field(
        default="1GB",
        description="Largest total size of the compiled-component cache; the least recently "
        "used entries go first (a Python plugin takes about 40MB).",
    )
    engine: EngineOptions = Field(default_factory=EngineOptions)
    bundles: BundleOptions = Field(default_factory=BundleOptions)
    defaults: LimitOptions = Field(default_factory=LimitOptions)
    trust: TrustOptions = Field(default_factory=TrustOptions)
    plugins: dict[str, PluginSettings] = Field(default_factory=dict)
    serve: ServeOptions = Field(default_factory=ServeOptions)

    _origin: SettingsOrigin = PrivateAttr(default_factory=SettingsOrigin)

    @property
    def origin(self) -> SettingsOrigin:
        """Where these settings came from: messages name settings in that form."""
        return self._origin

    def with_origin(self, origin: SettingsOrigin) -> HostConfig:
        """A copy that names `origin` as where its settings came from."""
        copy = self.model_copy()
        copy._origin = origin
        return copy

    _cache_size = field_validator("cache_max_size")(_positive_size)

    @model_validator(mode="after")
    def _pinned_signers_are_trusted(self) -> HostConfig:
        names = {key.name for key in self.trust.keys}
        for plugin, settings in self.plugins.items():
            signer = settings.pin.signer if settings.pin is not None else None
            if signer is not None and signer not in names:
                raise ValueError(f"plugins.{plugin}.pin.signer: {signer!r} is not in trust.keys")
        return self

    def settings_for(self, plugin: str) -> PluginSettings:
        return self.plugins.get(plugin) or PluginSettings()

    def resolved(self, base: Path) -> HostConfig:
        """A copy whose relative paths are taken relative to `base`."""
        return self.model_copy(
            update={
                "plugin_dirs": [base / p for p in self.plugin_dirs],
                "data_dir": base / self.data_dir,
                "cache_dir": None if self.cache_dir is None else base / self.cache_dir,
                "trust": self.trust.resolved(base),
                "plugins": {
                    name: settings.model_copy(
                        update={
                            "pin": settings.pin.model_copy(
                                update={"plugin_dir": base / settings.pin.plugin_dir}
                            )
                        }
                    )
                    if settings.pin is not None and settings.pin.plugin_dir is not None
                    else settings
                    for name, settings in self.plugins.items()
                },
            }
        )

    @property
    def compiled_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()


def default_cache_dir() -> Path:
    """Where compiled components go unless `cache_dir` says otherwise.

    One cache per user, not per data dir: a component compiles once per machine (10-25 s for a
    Python plugin), whichever directory the host runs from. Entries are keyed by the wasm's
    sha256 and the engine's settings, so hosts of any configuration can share it.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).absolute()
    return platformdirs.user_cache_path("corral", appauthor=False) / "compiled"


def load_host_config(path: Path) -> HostConfig:
    """Read and validate corral.yaml; problems raise `ConfigError` naming the field."""
    path = Path(path)
    data = load_yaml_mapping(path, ConfigError)
    config = validate_model(HostConfig, data, str(path), ConfigError)
    return config.resolved(path.parent.absolute()).with_origin(SettingsOrigin(path))
