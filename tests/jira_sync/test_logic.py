"""The plugin's pure logic (merge, ADF, field conversion), run natively by importing its modules.

Kept small on purpose: the behaviour that counts is tested through the built plugin in
Wasmtime against the emulator (tests/jira_sync/test_sync.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "jira-sync"))

import adf
import fields
import merge

SETTINGS: dict[str, Any] = {
    "direction": "both",
    "conflict_strategy": "manual",
    "api_version": 3,
    "field_mapping": {},
    "user_map": {"ana": "acc-1"},
}


def fieldmap(**overrides: Any) -> fields.FieldMap:
    return fields.build({**SETTINGS, **overrides}, {})


def values(**changed: Any) -> dict[str, Any]:
    base = {
        "title": "T",
        "description": "",
        "status": "todo",
        "priority": "medium",
        "assignee": None,
        "labels": [],
        "due_date": None,
    }
    return {**base, **changed}


def test_one_sided_changes_propagate_and_same_changes_agree() -> None:
    outcome = merge.reconcile(
        fieldmap(),
        values(title="mine", labels=["x"]),
        values(status="done", labels=["x"]),
        values(),
    )
    assert outcome.to_remote == {"title": "mine"}
    assert outcome.to_local == {"status": "done"}
    assert outcome.base == values(title="mine", status="done", labels=["x"])
    assert outcome.conflicts == []


@pytest.mark.parametrize(
    ("strategy", "local_at", "remote_at", "winner"),
    [
        ("local-wins", "", "", "local"),
        ("remote-wins", "", "", "remote"),
        ("newest-wins", "2026-01-01T10:00:00.000Z", "2026-01-01T10:59:00.000+0100", "local"),
        ("newest-wins", "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:01.000+0000", "remote"),
    ],
)
def test_strategies(strategy: str, local_at: str, remote_at: str, winner: str) -> None:
    outcome = merge.reconcile(
        fieldmap(conflict_strategy=strategy),
        values(title="mine"),
        values(title="theirs"),
        values(),
        local_at=local_at,
        remote_at=remote_at,
    )
    expected = "mine" if winner == "local" else "theirs"
    assert outcome.base["title"] == expected
    assert (outcome.to_remote if winner == "local" else outcome.to_local) == {"title": expected}


def test_manual_conflict_holds_the_field_and_syncs_the_rest() -> None:
    outcome = merge.reconcile(
        fieldmap(), values(title="mine"), values(title="theirs", priority="high"), values()
    )
    assert outcome.conflicts == [("title", "T", "mine", "theirs")]
    assert outcome.to_local == {"priority": "high"} and outcome.to_remote == {}
    assert outcome.base["title"] == "T"
    held = merge.reconcile(
        fieldmap(), values(title="mine"), values(title="again"), values(), held={"title"}
    )
    assert not held.changed and held.conflicts == []


def test_per_field_direction_and_strategy_override_the_defaults() -> None:
    fm = fieldmap(
        conflict_strategy="remote-wins",
        field_mapping={
            "title": {"direction": "push"},
            "priority": {"conflict_strategy": "local-wins"},
        },
    )
    outcome = merge.reconcile(
        fm, values(priority="low"), values(title="theirs", priority="high"), values()
    )
    assert "title" not in outcome.to_local  # push-only: a remote edit never comes in
    assert outcome.to_remote == {"priority": "low"}


def test_value_maps_and_users_convert_both_ways() -> None:
    fm = fieldmap(field_mapping={"status": {"values": {"Code Review": "review"}}})
    status, assignee = fm.by_local["status"], fm.by_local["assignee"]
    assert status.to_local({"name": "Code Review"}) == "review"
    assert status.to_local({"name": "Waiting For QA"}) == "waiting_for_qa"
    assert status.values.to_remote("waiting_for_qa", ["Waiting For QA"]) == "Waiting For QA"
    assert assignee.to_local({"accountId": "acc-1"}) == "ana"
    assert assignee.to_remote("ana") == {"accountId": "acc-1"}
    labels = fm.by_local["labels"]
    assert labels.to_local(["b", "corral-t1", "a"]) == ["a", "b"]
    assert labels.to_remote(["z"], ["corral-t1", "old"]) == ["z", "corral-t1"]


def test_adf_reads_jira_documents() -> None:
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 2},
                "content": [{"type": "text", "text": "Plan"}],
            },
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Ship "},
                    {"type": "text", "text": "it", "marks": [{"type": "strong"}]},
                    {"type": "hardBreak"},
                    {"type": "mention", "attrs": {"text": "@ana"}},
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "a"}]}
                        ],
                    }
                ],
            },
        ],
    }
    assert adf.to_text(doc) == "## Plan\n\nShip **it**\n@ana\n\n- a"


_LINE = st.text(alphabet="abc XYZ*`#-1.", min_size=1, max_size=12).map(str.strip).filter(bool)


@given(st.lists(st.lists(_LINE, min_size=1, max_size=3).map("\n".join), min_size=1, max_size=4))
def test_adf_round_trips_what_it_writes(blocks: list[str]) -> None:
    text = "\n\n".join(blocks)
    once = adf.to_text(adf.to_adf(text))
    assert adf.to_text(adf.to_adf(once)) == once
