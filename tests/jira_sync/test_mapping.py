"""jira-sync's field mapping through the real plugin: custom fields by name, ADF and the v2
API's wiki markup, local deletions, and dry runs."""

from __future__ import annotations

from typing import Any

from .harness import Bench


def test_custom_fields_by_name_resolve_once_and_sync_both_ways(make_bench: Any) -> None:
    bench: Bench = make_bench(
        issues=8,
        field_mapping={"custom_fields.points": "Story Points", "custom_fields.team": "Team"},
    )
    calls = bench.record_requests()
    bench.sync(full=True)
    for key in bench.issue_keys():
        raw = bench.fields(key)
        custom = bench.task_of(key).custom_fields
        assert custom.get("points") == raw["customfield_10011"]
        team = raw["customfield_10020"]
        assert custom.get("team") == (team["value"] if team else None)
    key = bench.issue_keys()[0]
    task = bench.task_of(key)
    bench.edit(task.id, custom_fields={**task.custom_fields, "points": 21})

    bench.sync()

    assert bench.fields(key)["customfield_10011"] == 21
    assert len([c for c in calls if c.path.endswith("/field")]) == 1  # resolved once


def test_adf_descriptions_read_as_text_and_written_back_as_adf(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=0)
    rich = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 2},
                "content": [{"type": "text", "text": "Why"}],
            },
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Users "},
                    {"type": "text", "text": "cannot", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " log in."},
                ],
            },
        ],
    }
    key = bench.create_issue("login", description=rich)
    bench.sync(full=True)
    task = bench.task_of(key)
    assert task.description == "## Why\n\nUsers **cannot** log in."

    text = "## Steps\n\n1. open the page\n2. press *login*\n\n- seen on `v2`"
    bench.edit(task.id, description=text)
    bench.sync()

    stored = bench.fields(key)["description"]
    assert stored["type"] == "doc" and stored["content"][0]["type"] == "heading"
    bench.update_issue(key, summary="touch")  # pulled again: the text comes back the same
    bench.sync()
    assert bench.task_of(key).description == text
    assert bench.task_of(key).title == "touch"


def test_api_v2_uses_wiki_markup_strings(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=3, api_version=2)
    calls = bench.record_requests()
    bench.sync(full=True)
    key = bench.issue_keys()[0]
    v2 = bench.issue(key, api=2)["fields"]
    assert bench.task_of(key).description == (v2["description"] or "")
    task = bench.task_of(key)
    bench.edit(task.id, description="h2. Plan\n\n*bold* move", title="v2 title")

    bench.sync()

    v2 = bench.issue(key, api=2)["fields"]
    assert v2["description"] == "h2. Plan\n\n*bold* move"
    assert v2["summary"] == "v2 title"
    assert bench.sync().counts["push"].updated == 0
    plugin_calls = [c for c in calls if c.user and c.user.email == bench.jira.users[0].email]
    assert plugin_calls and all("/rest/api/2/" in c.path for c in plugin_calls)


def test_a_locally_deleted_task_is_reported_and_its_issue_kept(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=2)
    bench.sync(full=True)
    key = bench.issue_keys()[0]
    bench.host.task_store.delete(bench.task_of(key).id, None, actor="host")

    report = bench.sync()

    assert report.counts["push"].deleted == 1
    assert any("kept" in e.reason for e in report.errors)
    assert key in bench.issue_keys()
    assert bench.sync(full=True).counts["pull"].created == 0  # not pulled back in


def test_delete_remote_deletes_the_issue_of_a_deleted_task(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=2, delete_remote=True)
    bench.sync(full=True)
    key = bench.issue_keys()[1]
    bench.host.task_store.delete(bench.task_of(key).id, None, actor="host")

    report = bench.sync()

    assert report.counts["push"].deleted == 1 and report.clean
    assert key not in bench.issue_keys()


def test_dry_run_changes_nothing_on_either_side(make_bench: Any) -> None:
    bench: Bench = make_bench(issues=4)
    dry = bench.sync(full=True, dry_run=True)
    assert dry.counts["pull"].created == 4
    assert bench.tasks() == {}
    bench.sync(full=True)
    key = bench.issue_keys()[0]
    bench.edit(bench.task_of(key).id, title="not yet")
    would = bench.sync(dry_run=True)
    assert would.counts["push"].updated == 1
    assert bench.fields(key)["summary"] != "not yet"
    again = bench.sync(full=True, dry_run=True)  # every issue still there: nothing gone
    assert again.counts["pull"].deleted == 0 and again.clean, again
