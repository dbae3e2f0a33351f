"""The README's corral.yaml examples are valid configuration: an edit cannot break one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from corral._validation import validate_model
from corral.config import HostConfig

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_config_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"yaml-block-{i}" for i in range(len(BLOCKS))])
def test_every_yaml_example_is_a_valid_corral_yaml(block: str) -> None:
    data = yaml.safe_load(block)
    assert isinstance(data, dict)
    validate_model(HostConfig, data, "README.md", ValueError)
