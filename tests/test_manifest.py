"""Manifest validation: every field, its error message, and the published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from corral import ManifestError, load_manifest
from corral.manifest import manifest_json_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "plugin-sdk" / "schema" / "manifest.schema.json"
CHECKSUM = "sha256:" + "ab" * 32


def valid() -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "plugin": {
            "name": "jira-sync",
            "version": "1.0.0",
            "description": "Jira task synchronization plugin",
            "author": "Corral",
        },
        "capabilities": ["task_sync", "field_mapping", "webhook_support"],
        "runtime": {
            "wasm_file": "plugin.wasm",
            "memory_limit": "64MB",
            "execution_timeout": "30s",
            "fuel": None,
        },
        "security": {
            "permissions": ["network.http.outbound", "config.read", "task.read_write", "kv"],
            "allowed_hosts": ["https://*.atlassian.net"],
            "checksum": CHECKSUM,
        },
        "config_schema": {"type": "object"},
    }


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_manifest_loads_with_parsed_limits(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, valid()))
    assert manifest.name == "jira-sync"
    assert manifest.runtime.memory_limit_bytes == 64 * 1024 * 1024
    assert manifest.runtime.execution_timeout_s == 30.0
    assert manifest.requested_permissions == {
        "network.http.outbound",
        "config.read",
        "task.read",
        "task.write",
        "kv",
    }


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        (
            "runtime",
            "memory_limit",
            "64XB",
            'runtime.memory_limit: "64XB" is not a size like "64MB"',
        ),
        (
            "runtime",
            "execution_timeout",
            "10x",
            'runtime.execution_timeout: "10x" is not a duration',
        ),
        ("runtime", "execution_timeout", "0s", 'runtime.execution_timeout: "0s" must be longer'),
        ("runtime", "fuel", 0, "runtime.fuel: Input should be greater than 0"),
        (
            "runtime",
            "wasm_file",
            "../evil.wasm",
            'runtime.wasm_file: "../evil.wasm" must be a relative',
        ),
        (
            "runtime",
            "wasm_file",
            "/etc/x.wasm",
            'runtime.wasm_file: "/etc/x.wasm" must be a relative',
        ),
        ("plugin", "name", "Jira_Sync", 'plugin.name: "Jira_Sync" is not a plugin name'),
        ("plugin", "version", "1.0", 'plugin.version: "1.0" is not a semantic version'),
        (
            "security",
            "permissions",
            ["net.everything"],
            'security.permissions: "net.everything" is not a permission',
        ),
        ("security", "checksum", "md5:abc", 'security.checksum: "md5:abc" is not "sha256:"'),
        ("runtime", "bogus", 1, "runtime.bogus: unknown key"),
    ],
)
def test_each_invalid_field_is_named(
    tmp_path: Path, section: str, key: str, value: Any, expected: str
) -> None:
    data = valid()
    data[section][key] = value
    path = write(tmp_path, data)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_missing_and_unknown_top_level_keys(tmp_path: Path) -> None:
    data = valid()
    del data["security"]
    with pytest.raises(ManifestError, match=r"security: is required"):
        load_manifest(write(tmp_path, data))
    data = valid()
    data["extras"] = True
    with pytest.raises(ManifestError, match=r"extras: unknown key"):
        load_manifest(write(tmp_path, data))


def test_schema_version_and_config_schema_are_checked(tmp_path: Path) -> None:
    data = valid()
    data["schema_version"] = "2.0"
    with pytest.raises(ManifestError, match=r"schema_version: Input should be '1.0'"):
        load_manifest(write(tmp_path, data))
    data = valid()
    data["config_schema"] = {"type": "no-such-type"}
    with pytest.raises(ManifestError, match=r"config_schema.type: is not a valid JSON Schema"):
        load_manifest(write(tmp_path, data))


def test_yaml_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ManifestError, match=r"invalid YAML at line 3, column 1: .*expected ',' or ']'"
    ):
        load_manifest(write(tmp_path, "plugin:\n  name: [unclosed\n"))
    with pytest.raises(ManifestError, match=r"expected a mapping"):
        load_manifest(write(tmp_path, "- a list\n"))
    with pytest.raises(ManifestError, match=r"file not found"):
        load_manifest(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError, match=r"invalid YAML: unacceptable character #x0001"):
        load_manifest(write(tmp_path, "plugin: \x01\n"))
    with pytest.raises(ManifestError, match=r"invalid YAML: Exceeds the limit \(4300 digits\)"):
        load_manifest(write(tmp_path, "plugin: " + "1" * 5000 + "\n"))


def test_published_schema_matches_the_model() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == json.loads(json.dumps(manifest_json_schema())), (
        "regenerate with: python plugin-sdk/schema/generate.py"
    )


def test_published_schema_accepts_valid_and_rejects_invalid_manifests() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(valid(), schema)
    bad = valid()
    bad["runtime"]["memory_limit"] = "64XB"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = valid()
    bad["security"]["permissions"] = ["net.everything"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
