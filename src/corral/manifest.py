"""The bundle manifest (`manifest.yaml`): a pydantic model, its loader and its JSON Schema.

The JSON Schema in ``plugin-sdk/schema/manifest.schema.json`` is generated from `Manifest`
(``python plugin-sdk/schema/generate.py``); a test keeps them equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._errors import ManifestError
from ._json_schema import check_schema
from ._regular_file import read_regular_file
from ._units import parse_duration, parse_size
from ._validation import FieldProblem, parse_yaml_mapping, validate_model
from .permissions import KNOWN_PERMISSIONS, check_permission_names, expand_permissions

__all__ = [
    "COMMAND_NAME_PATTERN",
    "MANIFEST_FILENAME",
    "MAX_MANIFEST_BYTES",
    "CommandSpec",
    "Manifest",
    "commands_json",
    "load_manifest",
    "manifest_json_schema",
    "parse_manifest",
]

MANIFEST_FILENAME = "manifest.yaml"
MAX_MANIFEST_BYTES = 1 << 20
"""The default cap on a manifest's size (operators set `bundles.max_manifest_size`)."""

_SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([KMG]i?B|[kmg]i?b|B|b)\s*$"
_DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m)\s*$"
_CHECKSUM = r"^sha256:[0-9a-f]{64}$"
COMMAND_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
"""A declared command's name: safe in a URL path and as a tool name for AI agents."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginInfo(_Strict):
    name: str = Field(
        description="Plugin name, unique per host.", json_schema_extra={"pattern": _NAME}
    )
    version: str = Field(description="Semantic version.", json_schema_extra={"pattern": _SEMVER})
    description: str = ""
    author: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(_NAME, value):
            raise ValueError(
                f'"{value}" is not a plugin name (lowercase letters, digits and "-", '
                "starting with a letter, at most 63 characters)"
            )
        return value

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not re.fullmatch(_SEMVER, value):
            raise ValueError(f'"{value}" is not a semantic version like "1.0.0"')
        return value


class RuntimeLimits(_Strict):
    wasm_file: str = Field(
        default="plugin.wasm", description="The component, relative to the bundle directory."
    )
    memory_limit: str = Field(
        default="64MB",
        description="Linear memory cap: B, KB, MB, GB (KiB/MiB/GiB accepted).",
        json_schema_extra={"pattern": _SIZE_PATTERN},
    )
    execution_timeout: str = Field(
        default="30s",
        description="Wall-clock limit per call: ms, s, m.",
        json_schema_extra={"pattern": _DURATION_PATTERN},
    )
    fuel: int | None = Field(
        default=None, gt=0, description="Optional instruction budget per call."
    )
    concurrent_events: bool = Field(
        default=False,
        description=(
            "Whether `corral serve` may deliver events while a scheduled job of this plugin "
            "runs (by default deliveries wait for it)."
        ),
    )

    @field_validator("wasm_file")
    @classmethod
    def _check_wasm_file(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f'"{value}" must be a relative path inside the bundle')
        return value

    @field_validator("memory_limit")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        parse_size(value)
        return value

    @field_validator("execution_timeout")
    @classmethod
    def _check_timeout(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError(f'"{value}" must be longer than zero')
        return value

    @property
    def memory_limit_bytes(self) -> int:
        return parse_size(self.memory_limit)

    @property
    def execution_timeout_s(self) -> float:
        return parse_duration(self.execution_timeout)


class Security(_Strict):
    permissions: list[str] = Field(
        default_factory=list,
        description="Permissions the plugin requests; the operator must grant each.",
        json_schema_extra={"items": {"enum": [*sorted(KNOWN_PERMISSIONS)]}},
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description='Outbound HTTP allowlist: "scheme://host[:port]", host may be "*.example.com".',
    )
    operator_hosts: bool = Field(
        default=False,
        description=(
            "Let the operator choose the hosts: the operator's http.allowed_hosts is taken whole "
            "instead of narrowing allowed_hosts, which then apply only when the operator lists "
            "none (for services whose host only the operator knows, like a self-hosted server)."
        ),
    )
    checksum: str = Field(
        description='"sha256:<hex>" of the component.', json_schema_extra={"pattern": _CHECKSUM}
    )

    _check_permissions = field_validator("permissions")(check_permission_names)

    @field_validator("checksum")
    @classmethod
    def _check_checksum(cls, value: str) -> str:
        if not re.fullmatch(_CHECKSUM, value):
            raise ValueError(f'"{value}" is not "sha256:" followed by 64 lowercase hex digits')
        return value


def _checked_schema(value: dict[str, Any]) -> dict[str, Any]:
    check_schema(value)
    return value


class CommandSpec(_Strict):
    """One command the plugin declares: what it does and the JSON it takes and returns."""

    description: str = Field(default="", description="What the command does, for people and tools.")
    input_schema: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "JSON Schema of the command's input, checked by the host before the plugin is "
            "entered. Self-contained like config_schema; empty accepts anything."
        ),
    )
    output_schema: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "JSON Schema of the command's result: documentation for callers, checked only "
            "where asked (`PluginHost.call(..., check_output=True)`)."
        ),
    )

    _check_input_schema = field_validator("input_schema")(_checked_schema)
    _check_output_schema = field_validator("output_schema")(_checked_schema)


def commands_json(commands: Mapping[str, CommandSpec]) -> dict[str, dict[str, Any]]:
    """Declared commands as plain JSON, as `plugins inspect` and ``GET /plugins`` show them."""
    return {name: spec.model_dump() for name, spec in commands.items()}


class Manifest(_Strict):
    """A plugin bundle's manifest.yaml."""

    schema_version: Literal["1.0"] = Field(description='Manifest format version: "1.0".')
    plugin: PluginInfo
    capabilities: list[str] = Field(
        default_factory=list, description="What the plugin offers (free-form tags)."
    )
    runtime: RuntimeLimits = Field(default_factory=RuntimeLimits)
    security: Security
    config_schema: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "JSON Schema for the operator-supplied plugin config. Self-contained: references "
            'only inside it ("#/..."), nothing is ever fetched.'
        ),
    )

    commands: dict[str, CommandSpec] = Field(
        default_factory=dict,
        description=(
            "The commands the plugin declares, by name. Optional: undeclared commands can still "
            "be called, without input checks. `corral build` fills it for Python plugins from "
            "`@plugin.command`."
        ),
        json_schema_extra={"propertyNames": {"pattern": COMMAND_NAME_PATTERN}},
    )

    _check_config_schema = field_validator("config_schema")(_checked_schema)

    @field_validator("commands")
    @classmethod
    def _check_command_names(cls, value: dict[str, CommandSpec]) -> dict[str, CommandSpec]:
        for name in value:
            if not re.fullmatch(COMMAND_NAME_PATTERN, name):
                raise FieldProblem(
                    (name,),
                    'is not a command name (letters, digits, "_" and "-", starting with a '
                    "letter, at most 64 characters)",
                )
        return value

    @property
    def name(self) -> str:
        return self.plugin.name

    @property
    def requested_permissions(self) -> frozenset[str]:
        """The permissions requested, with aliases such as ``task.read_write`` expanded."""
        return expand_permissions(self.security.permissions)


def load_manifest(path: Path, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest:
    """Load and validate a manifest file; every problem is one `ManifestError` line.

    Only a regular file of at most `max_bytes` is read (a FIFO or device is refused, not opened
    for a blocking read).
    """
    data = read_regular_file(path, max_bytes, "bundles.max_manifest_size", ManifestError)
    return parse_manifest(data, path)


def parse_manifest(data: bytes, path: Path) -> Manifest:
    """Validate a manifest's bytes, already read from `path` (named in errors)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    return validate_model(
        Manifest, parse_yaml_mapping(text, str(path), ManifestError), str(path), ManifestError
    )


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of manifest.yaml, as published in plugin-sdk/schema/."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Corral plugin manifest"
    return schema
