"""The operator's host configuration, `corral.yaml`.

```yaml
plugin_dirs: [plugins]          # searched in order
data_dir: .corral               # SQLite stores, audit log
cache_dir: null                 # compiled components; default: the per-user cache dir
engine:
  max_wasm_stack: 1MB
bundles:                        # what reading one bundle may cost
  max_manifest_size: 1MiB
  max_component_size: 256MiB
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
    pin: {plugin_dir: plugins}  # only a bundle in this plugin dir may take the name
    http: {...}                 # options owned by capabilities (see capabilities/*)
```

Relative paths are relative to the directory of the config file. Two bundles claiming one
plugin name are both refused unless a pin decides between them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._errors import ConfigError
from ._units import format_size, parse_duration, parse_size
from ._validation import load_yaml_mapping, validate_model
from .bundle import BundleLimits
from .capabilities import CAPABILITIES
from .permissions import check_permission_names

__all__ = [
    "LIMIT_CEILINGS",
    "BundleOptions",
    "EngineOptions",
    "HostConfig",
    "LimitOptions",
    "PinOptions",
    "PluginSettings",
    "default_cache_dir",
    "load_host_config",
]

CACHE_DIR_ENV = "CORRAL_CACHE_DIR"

_CAPABILITY_KEYS = frozenset(key for cap in CAPABILITIES for key in cap.option_keys)


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


_BUNDLE_DEFAULTS = BundleLimits()


class BundleOptions(_Strict):
    """``bundles:``: caps on reading a bundle, checked with `stat` before anything is read."""

    max_manifest_size: str = format_size(_BUNDLE_DEFAULTS.max_manifest_bytes)
    max_component_size: str = format_size(_BUNDLE_DEFAULTS.max_component_bytes)

    @field_validator("max_manifest_size", "max_component_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if parse_size(value) <= 0:
            raise ValueError(f'"{value}" must be larger than zero')
        return value

    def limits(self) -> BundleLimits:
        return BundleLimits(
            max_manifest_bytes=parse_size(self.max_manifest_size),
            max_component_bytes=parse_size(self.max_component_size),
        )


class PinOptions(_Strict):
    """``plugins.<name>.pin``: which bundle may take the name when several claim it.

    A bundle outside the pin is refused, so a bundle dropped into another plugin dir cannot take
    over the name with its grants, credentials and stored data. (Signed bundles will add a
    ``signer`` here.)
    """

    plugin_dir: Path = Field(description="One of plugin_dirs; relative to the config file.")


class PluginSettings(BaseModel):
    """``plugins.<name>`` in corral.yaml. Keys beyond these belong to capabilities."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool = True
    grant: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    limits: LimitOptions = Field(default_factory=LimitOptions)
    pin: PinOptions | None = None

    _known = field_validator("grant")(check_permission_names)

    @model_validator(mode="after")
    def _capability_keys(self) -> PluginSettings:
        for key in self.model_extra or {}:
            if key not in _CAPABILITY_KEYS:
                raise ValueError(
                    f"unknown key {key!r} (known: enabled, grant, config, limits, pin, "
                    + ", ".join(sorted(_CAPABILITY_KEYS))
                    + ")"
                )
        return self

    def capability_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class HostConfig(_Strict):
    """A whole corral.yaml; paths are absolute once loaded through `load_host_config`."""

    plugin_dirs: list[Path] = Field(default_factory=list)
    data_dir: Path = Path(".corral")
    cache_dir: Path | None = Field(
        default=None,
        description="Compiled-component cache; default $CORRAL_CACHE_DIR, else the per-user "
        "cache dir (e.g. ~/.cache/corral/compiled on Linux).",
    )
    engine: EngineOptions = Field(default_factory=EngineOptions)
    bundles: BundleOptions = Field(default_factory=BundleOptions)
    defaults: LimitOptions = Field(default_factory=LimitOptions)
    plugins: dict[str, PluginSettings] = Field(default_factory=dict)

    def settings_for(self, plugin: str) -> PluginSettings:
        return self.plugins.get(plugin) or PluginSettings()

    def resolved(self, base: Path) -> HostConfig:
        """A copy whose relative paths are taken relative to `base`."""
        return self.model_copy(
            update={
                "plugin_dirs": [base / p for p in self.plugin_dirs],
                "data_dir": base / self.data_dir,
                "cache_dir": None if self.cache_dir is None else base / self.cache_dir,
                "plugins": {
                    name: settings.model_copy(
                        update={"pin": PinOptions(plugin_dir=base / settings.pin.plugin_dir)}
                    )
                    if settings.pin is not None
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
    return config.resolved(path.parent.absolute())
