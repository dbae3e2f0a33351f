"""tools/trim_jira_spec.py and the subset it vendored: closed under references, complete, and
(where Atlassian's full spec sits beside the repository) up to date with it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ROOT / "tests" / "data" / "jira-openapi-subset.json"
FULL_SPEC = ROOT.parent / "shared" / "jira" / "jira-cloud-platform-v3.openapi.json"


def load_tool() -> ModuleType:
    path = ROOT / "tools" / "trim_jira_spec.py"
    spec = importlib.util.spec_from_file_location("trim_jira_spec", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def subset() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(SUBSET.read_text(encoding="utf-8"))
    return result


def test_subset_holds_every_served_operation_and_only_those() -> None:
    paths = subset()["paths"]
    held = {
        (p, m)
        for p, item in paths.items()
        for m in item
        if m in ("get", "put", "post", "delete", "patch")
    }
    assert held == set(TOOL.SERVED_OPERATIONS)


def test_subset_is_closed_under_references() -> None:
    # trimming the subset again keeps every component: nothing it references is missing
    # (a dangling $ref raises) and nothing unreferenced was vendored
    document = subset()
    again = TOOL.trim(document)
    assert again["components"] == document["components"]
    assert again["paths"] == document["paths"]


def test_trim_refuses_a_spec_without_a_served_operation() -> None:
    document = subset()
    del document["paths"]["/rest/api/3/myself"]
    with pytest.raises(TOOL.SpecError, match="GET /rest/api/3/myself: not in the input spec"):
        TOOL.trim(document)


def test_trim_refuses_a_dangling_reference() -> None:
    document = subset()
    del document["components"]["schemas"]["ErrorCollection"]
    with pytest.raises(TOOL.SpecError, match="ErrorCollection: dangling reference"):
        TOOL.trim(document)


@pytest.mark.skipif(not FULL_SPEC.exists(), reason="Atlassian's full spec is not beside the repo")
def test_vendored_subset_is_what_the_tool_makes_of_the_full_spec(tmp_path: Path) -> None:
    out = tmp_path / "subset.json"
    assert TOOL.main([str(FULL_SPEC), str(out)]) == 0
    assert out.read_bytes() == SUBSET.read_bytes(), "re-run tools/trim_jira_spec.py"
