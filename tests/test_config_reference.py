"""The corral.yaml reference (docs/configuration.md) and JSON Schema stay equal to the models."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from corral._config_reference import (
    EXAMPLE,
    config_keys,
    configuration_markdown,
    describe,
    host_config_schema,
)
from corral.config import load_host_config

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "regenerate with: python plugin-sdk/schema/generate.py"


def test_published_schema_and_reference_match_the_models() -> None:
    published = json.loads((ROOT / "plugin-sdk" / "schema" / "corral.schema.json").read_text())
    assert published == host_config_schema(), REGENERATE
    assert (ROOT / "docs" / "configuration.md").read_text() == configuration_markdown(), REGENERATE


def test_every_key_is_documented() -> None:
    schema = host_config_schema()
    keys = config_keys(schema)
    assert "plugins.<name>.credentials[].secret" in keys and "cache_dir" in keys
    assert [key for key in keys if not describe(schema, key)] == []


def test_the_example_is_valid_for_the_schema_and_the_host(tmp_path: Path) -> None:
    example = yaml.safe_load(EXAMPLE)
    schema = host_config_schema()
    jsonschema.validate(example, schema)
    config = tmp_path / "corral.yaml"
    config.write_text(EXAMPLE)
    assert load_host_config(config).plugins["jira-sync"].enabled
    example["plugins"]["jira-sync"]["htpp"] = {}
    with pytest.raises(jsonschema.ValidationError, match="htpp"):
        jsonschema.validate(example, schema)
