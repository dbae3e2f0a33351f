"""The Jira emulator's REST surface, over real HTTP on loopback: shapes, JQL, paging, auth,
errors, state files, concurrency and the command line."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.testing.jira import (
    ApiCall,
    Clock,
    EmulatorHandle,
    IssueEvent,
    JiraEmulator,
    serve,
)
from corral.testing.jira._adf import doc, paragraph, text

ROOT = Path(__file__).resolve().parent.parent
V3 = "/rest/api/3"
V2 = "/rest/api/2"


def errors_shape(response: httpx.Response) -> dict[str, Any]:
    """The body of an error answer, checked to be Jira's shape."""
    body: dict[str, Any] = response.json()
    assert set(body) == {"errorMessages", "errors"}, body
    assert isinstance(body["errorMessages"], list) and isinstance(body["errors"], dict)
    assert "Traceback" not in response.text
    return body


@pytest.fixture(scope="module")
def seeded() -> Iterator[EmulatorHandle]:
    """250 seeded issues, never written to (read-only tests share it)."""
    emulator = JiraEmulator(issues=250, seed=7)
    with serve(emulator) as handle:
        yield handle
    emulator.close()


@pytest.fixture
def alice(jira_emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jira_emulator.url, auth=jira_emulator.basic_auth(0)) as client:
        yield client


@pytest.fixture
def bob(jira_emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jira_emulator.url, auth=jira_emulator.basic_auth(1)) as client:
        yield client


@pytest.fixture
def reader(seeded: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=seeded.url, auth=seeded.basic_auth(0)) as client:
        yield client


def create(client: httpx.Client, summary: str = "Write the docs", **fields: Any) -> str:
    response = client.post(
        f"{V3}/issue",
        json={
            "fields": {
                "project": {"key": "DEMO"},
                "issuetype": {"name": "Task"},
                "summary": summary,
                **fields,
            }
        },
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def without_host(body: Any) -> Any:
    """`body` with every http://host:port/ link cut to its path (ports differ per run)."""
    import re

    return json.loads(re.sub(r"http://127\.0\.0\.1:\d+", "", json.dumps(body)))


def search_all(client: httpx.Client, jql: str, page_size: int, **params: Any) -> list[str]:
    keys: list[str] = []
    token = None
    while True:
        query = {"jql": jql, "maxResults": page_size, "fields": "summary", **params}
        if token:
            query["nextPageToken"] = token
        body = client.get(f"{V3}/search/jql", params=query).json()
        keys.extend(issue["key"] for issue in body["issues"])
        assert "total" not in body
        token = body.get("nextPageToken")
        assert body["isLast"] is (token is None)
        if token is None:
            return keys


# -- auth --------------------------------------------------------------------------------


def test_basic_and_bearer_authenticate_each_configured_user(seeded: EmulatorHandle) -> None:
    alice, bob = seeded.users
    for user, headers in [
        (alice, {"Authorization": alice.authorization()}),
        (bob, {"Authorization": f"Bearer {bob.api_token}"}),
    ]:
        me = httpx.get(f"{seeded.url}{V3}/myself", headers=headers).json()
        assert me["accountId"] == user.account_id
        assert me["emailAddress"] == user.email
        assert me["timeZone"] == user.time_zone


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"alice@example.com:wrong").decode(),
        "Basic not-base64!",
        "Bearer nope",
        "Digest whatever",
    ],
)
def test_bad_credentials_answer_401_in_jiras_shape(
    seeded: EmulatorHandle, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{seeded.url}{V3}/search/jql?jql=project=DEMO", headers=headers)
    assert response.status_code == 401
    assert errors_shape(response)["errorMessages"]


# -- issues ------------------------------------------------------------------------------


def test_create_then_get_in_v3_adf_and_v2_wiki(alice: httpx.Client) -> None:
    description = doc(paragraph("Hello ", text("world", "strong")))
    created = alice.post(
        f"{V3}/issue",
        json={
            "fields": {
                "project": {"key": "DEMO"},
                "issuetype": {"id": "10002"},
                "summary": "Crash on save",
                "description": description,
                "labels": ["backend"],
                "customfield_10011": 5,
                "customfield_10020": {"value": "Payments"},
            }
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "key", "self"}
    assert body["key"] == "DEMO-1"
    assert body["self"].endswith(f"{V3}/issue/{body['id']}")

    v3 = alice.get(f"{V3}/issue/DEMO-1").json()
    assert v3["fields"]["description"] == description
    assert v3["fields"]["issuetype"]["name"] == "Bug"
    assert v3["fields"]["status"]["name"] == "To Do"
    assert v3["fields"]["priority"]["name"] == "Medium"
    assert v3["fields"]["customfield_10011"] == 5
    assert v3["fields"]["customfield_10020"]["value"] == "Payments"
    assert v3["fields"]["created"].endswith("+0000") and len(v3["fields"]["created"]) == 28
    v2 = alice.get(f"{V2}/issue/{body['id']}").json()
    assert v2["fields"]["description"] == "Hello *world*"

    alice.put(f"{V2}/issue/DEMO-1", json={"fields": {"description": "h2. Plan\n\n* one\n* two"}})
    stored = alice.get(f"{V3}/issue/DEMO-1", params={"fields": "description"}).json()
    assert [n["type"] for n in stored["fields"]["description"]["content"]] == [
        "heading",
        "bulletList",
    ]
    assert set(stored["fields"]) == {"description"}


def test_create_reports_every_bad_field_by_name(alice: httpx.Client) -> None:
    response = alice.post(
        f"{V3}/issue",
        json={
            "fields": {
                "project": {"key": "NOPE"},
                "description": "plain text is not ADF in v3",
                "status": {"name": "Done"},
                "customfield_99999": 1,
            }
        },
    )
    assert response.status_code == 400
    errors = errors_shape(response)["errors"]
    assert errors["project"] == "Specify a valid project ID or key"
    assert errors["issuetype"] == "Specify an issue type"
    assert errors["summary"] == "You must specify a summary of the issue."
    assert "Atlassian Document" in errors["description"]
    assert errors["status"].startswith("Field 'status' cannot be set")
    assert errors["customfield_99999"].startswith("Field 'customfield_99999' cannot be set")
    assert alice.get(f"{V3}/issue/DEMO-1").status_code == 404  # nothing half-created


def test_edit_rejects_status_and_unknown_fields_and_writes_nothing(alice: httpx.Client) -> None:
    key = create(alice)
    before = alice.get(f"{V3}/issue/{key}").json()["fields"]["updated"]
    response = alice.put(
        f"{V3}/issue/{key}",
        json={"fields": {"status": {"name": "Done"}, "summary": "ok", "bogus": 1}},
    )
    assert response.status_code == 400
    assert errors_shape(response)["errors"] == {
        "status": "Field 'status' cannot be set. It is not on the appropriate screen, or unknown.",
        "bogus": "Field 'bogus' cannot be set. It is not on the appropriate screen, or unknown.",
    }
    after = alice.get(f"{V3}/issue/{key}").json()["fields"]
    assert after["summary"] == "Write the docs" and after["updated"] == before


def test_every_edit_moves_updated_and_records_a_changelog_entry(
    jira_emulator: EmulatorHandle, alice: httpx.Client, bob: httpx.Client
) -> None:
    key = create(alice, labels=["a"])
    first = alice.get(f"{V3}/issue/{key}").json()["fields"]["updated"]
    assert alice.put(f"{V3}/issue/{key}", json={"fields": {"summary": "One"}}).status_code == 204
    # The same millisecond, another user: last write wins, `updated` still moves.
    assert (
        bob.put(
            f"{V3}/issue/{key}",
            json={"update": {"labels": [{"add": "b"}, {"remove": "a"}]}},
        ).status_code
        == 204
    )
    # Writing what is already there changes nothing.
    assert alice.put(f"{V3}/issue/{key}", json={"fields": {"summary": "One"}}).status_code == 204
    issue = alice.get(f"{V3}/issue/{key}", params={"expand": "changelog"}).json()
    assert issue["fields"]["summary"] == "One" and issue["fields"]["labels"] == ["b"]
    assert first < issue["fields"]["updated"]
    histories = issue["changelog"]["histories"]
    assert [h["author"]["emailAddress"] for h in histories] == [
        "bob@example.com",
        "alice@example.com",
    ]
    assert histories[1]["items"] == [
        {
            "field": "summary",
            "fieldtype": "jira",
            "fieldId": "summary",
            "from": None,
            "fromString": "Write the docs",
            "to": None,
            "toString": "One",
        }
    ]
    assert histories[0]["items"][0]["fromString"] == "a"
    assert histories[0]["items"][0]["toString"] == "b"
    assert histories[0]["created"] == issue["fields"]["updated"]

    page = alice.get(f"{V3}/issue/{key}/changelog", params={"maxResults": 1}).json()
    assert page["total"] == 2 and page["isLast"] is False and len(page["values"]) == 1
    assert page["values"][0]["items"][0]["field"] == "summary"  # oldest first here
    rest = alice.get(page["nextPage"]).json()
    assert rest["isLast"] is True and rest["startAt"] == 1


def test_comments_are_added_by_update_and_read_as_adf_or_wiki(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    key = create(alice)
    before = alice.get(f"{V3}/issue/{key}").json()["fields"]["updated"]
    adf_body = doc(paragraph("Looks ", text("good", "em")))
    added = alice.put(
        f"{V3}/issue/{key}", json={"update": {"comment": [{"add": {"body": adf_body}}]}}
    )
    assert added.status_code == 204
    assert (
        bob.put(
            f"{V2}/issue/{key}", json={"update": {"comment": [{"add": {"body": "*Ship* it"}}]}}
        ).status_code
        == 204
    )
    v3 = alice.get(f"{V3}/issue/{key}", params={"fields": "comment,updated"}).json()["fields"]
    comments = v3["comment"]["comments"]
    assert v3["comment"]["total"] == 2
    assert comments[0]["body"] == adf_body
    assert comments[0]["author"]["emailAddress"] == "alice@example.com"
    assert comments[1]["body"]["content"][0]["content"][0] == text("Ship", "strong")
    assert len({c["id"] for c in comments}) == 2
    assert before < v3["updated"]
    v2 = alice.get(f"{V2}/issue/{key}", params={"fields": "comment"}).json()["fields"]
    assert [c["body"] for c in v2["comment"]["comments"]] == ["Looks _good_", "*Ship* it"]
    # Jira keeps comments out of the changelog.
    assert alice.get(f"{V3}/issue/{key}/changelog").json()["total"] == 0
    empty = alice.put(f"{V3}/issue/{key}", json={"update": {"comment": [{"add": {}}]}})
    assert errors_shape(empty)["errors"] == {"comment": "Comment body can not be empty!"}


def test_transitions_follow_the_workflow_graph(alice: httpx.Client) -> None:
    key = create(alice)
    offered = alice.get(f"{V3}/issue/{key}/transitions").json()["transitions"]
    assert [(t["name"], t["to"]["name"]) for t in offered] == [("In Progress", "In Progress")]
    done = "41"
    refused = alice.post(f"{V3}/issue/{key}/transitions", json={"transition": {"id": done}})
    assert refused.status_code == 400
    assert errors_shape(refused)["errorMessages"] == [
        f"Transition id '{done}' is not valid for this issue."
    ]
    missing = alice.post(f"{V3}/issue/{key}/transitions", json={})
    assert errors_shape(missing)["errorMessages"] == ["Missing 'transition' identifier"]

    for name in ("In Progress", "In Review", "Done"):
        options = alice.get(f"{V3}/issue/{key}/transitions").json()["transitions"]
        (chosen,) = [t for t in options if t["to"]["name"] == name]
        moved = alice.post(
            f"{V3}/issue/{key}/transitions", json={"transition": {"id": chosen["id"]}}
        )
        assert moved.status_code == 204
    fields = alice.get(f"{V3}/issue/{key}").json()["fields"]
    assert fields["status"]["name"] == "Done"
    assert fields["status"]["statusCategory"]["key"] == "done"
    assert fields["resolution"]["name"] == "Done" and fields["resolutiondate"]
    changes = alice.get(f"{V3}/issue/{key}/changelog").json()["values"]
    status_items = [i for h in changes for i in h["items"] if i["field"] == "status"]
    assert [(i["fromString"], i["toString"]) for i in status_items] == [
        ("To Do", "In Progress"),
        ("In Progress", "In Review"),
        ("In Review", "Done"),
    ]


def test_delete_then_404_in_jiras_words(alice: httpx.Client) -> None:
    key = create(alice)
    assert alice.delete(f"{V3}/issue/{key}").status_code == 204
    gone = alice.get(f"{V3}/issue/{key}")
    assert gone.status_code == 404
    assert errors_shape(gone)["errorMessages"] == [
        "Issue does not exist or you do not have permission to see it."
    ]
    assert alice.delete(f"{V3}/issue/{key}").status_code == 404


def test_bulk_create_reports_failures_beside_successes(alice: httpx.Client) -> None:
    good = {"fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Story"}, "summary": "A"}}
    bad = {"fields": {"project": {"key": "DEMO"}, "issuetype": {"name": "Nope"}, "summary": "B"}}
    body = alice.post(f"{V3}/issue/bulk", json={"issueUpdates": [good, bad, good]})
    assert body.status_code == 201
    result = body.json()
    assert [i["key"] for i in result["issues"]] == ["DEMO-1", "DEMO-2"]
    (failure,) = result["errors"]
    assert failure["failedElementNumber"] == 1 and failure["status"] == 400
    assert failure["elementErrors"]["errors"] == {
        "issuetype": "The issue type selected is invalid."
    }
    all_bad = alice.post(f"{V3}/issue/bulk", json={"issueUpdates": [bad]})
    assert all_bad.status_code == 400 and all_bad.json()["issues"] == []


# -- search ------------------------------------------------------------------------------


def test_removed_search_endpoint_points_to_search_jql(reader: httpx.Client) -> None:
    for response in (
        reader.get(f"{V3}/search", params={"jql": "project = DEMO"}),
        reader.post(f"{V2}/search", json={"jql": "project = DEMO"}),
    ):
        assert response.status_code == 410
        assert "/rest/api/3/search/jql" in errors_shape(response)["errorMessages"][0]


def test_search_returns_ids_only_by_default_and_pages_of_50(reader: httpx.Client) -> None:
    body = reader.get(f"{V3}/search/jql", params={"jql": "project = DEMO"}).json()
    assert len(body["issues"]) == 50
    assert all(set(issue) == {"id"} for issue in body["issues"])
    assert body["isLast"] is False and body["nextPageToken"]


def test_field_selection(reader: httpx.Client) -> None:
    def fields_of(*fields: str) -> set[str]:
        params = [("jql", "key = DEMO-1"), *(("fields", f) for f in fields)]
        (issue,) = reader.get(f"{V3}/search/jql", params=params).json()["issues"]
        return set(issue["fields"])

    navigable = fields_of("*navigable")
    assert "comment" not in navigable and {"summary", "customfield_10011"} <= navigable
    assert fields_of("*all") == navigable | {"comment"}
    assert fields_of("summary,status", "labels") == {"summary", "status", "labels"}
    assert fields_of("-description") == navigable - {"description"}
    assert fields_of("*all", "-comment", "-summary") == navigable - {"summary"}


def test_max_results_is_capped_like_jira(reader: httpx.Client) -> None:
    with_fields = reader.get(
        f"{V3}/search/jql",
        params={"jql": "project = DEMO", "maxResults": 1000, "fields": "summary"},
    ).json()
    assert len(with_fields["issues"]) == 100
    ids_only = reader.post(
        f"{V3}/search/jql", json={"jql": "project = DEMO", "maxResults": 1000}
    ).json()
    assert len(ids_only["issues"]) == 250 and ids_only["isLast"] is True


@pytest.mark.parametrize("page_size", [1, 7, 100])
def test_paging_visits_every_match_once_in_order(reader: httpx.Client, page_size: int) -> None:
    keys = search_all(reader, "project = DEMO ORDER BY key ASC", page_size)
    assert keys == [f"DEMO-{n}" for n in range(1, 251)]
    newest_first = search_all(reader, "project = DEMO ORDER BY created DESC", page_size)
    created = [
        reader.get(f"{V3}/issue/{k}", params={"fields": "created"}).json()["fields"]["created"]
        for k in newest_first[:20]
    ]
    assert created == sorted(created, reverse=True)
    assert sorted(newest_first) == sorted(keys)


def test_paging_is_stable_while_issues_change(
    jira_emulator: EmulatorHandle, alice: httpx.Client
) -> None:
    jira_emulator.emulator.seed(60, seed=3)
    seen: list[str] = []
    token = None
    while True:
        params = {"jql": "project = DEMO ORDER BY key ASC", "maxResults": 10, "fields": "summary"}
        if token:
            params["nextPageToken"] = token
        body = alice.get(f"{V3}/search/jql", params=params).json()
        seen.extend(issue["key"] for issue in body["issues"])
        # Between pages: edit an issue already seen and one not yet seen, delete one ahead.
        n = len(seen)
        alice.put(f"{V3}/issue/DEMO-{n}", json={"fields": {"summary": f"seen {n}"}})
        if n + 5 <= 60:
            alice.put(f"{V3}/issue/DEMO-{n + 5}", json={"fields": {"summary": "ahead"}})
        if n == 30:
            alice.delete(f"{V3}/issue/DEMO-45")
        token = body.get("nextPageToken")
        if token is None:
            break
    assert seen == [f"DEMO-{n}" for n in range(1, 61) if n != 45]


def test_a_page_token_only_works_for_its_own_query(reader: httpx.Client) -> None:
    token = reader.get(
        f"{V3}/search/jql", params={"jql": "project = DEMO", "maxResults": 5}
    ).json()["nextPageToken"]
    for jql, bad in [("project = DEMO ORDER BY key", token), ("project = DEMO", "garbage")]:
        response = reader.get(f"{V3}/search/jql", params={"jql": jql, "nextPageToken": bad})
        assert response.status_code == 400
        assert errors_shape(response)["errorMessages"]


def test_search_expands_changelog(alice: httpx.Client) -> None:
    key = create(alice)
    alice.put(f"{V3}/issue/{key}", json={"fields": {"summary": "Changed"}})
    (issue,) = alice.post(
        f"{V3}/search/jql",
        json={"jql": f"key = {key}", "fields": ["summary"], "expand": "changelog"},
    ).json()["issues"]
    assert issue["changelog"]["total"] == 1
    assert issue["changelog"]["histories"][0]["items"][0]["toString"] == "Changed"


# -- JQL ---------------------------------------------------------------------------------


def keys(client: httpx.Client, jql: str) -> list[str]:
    response = client.get(
        f"{V3}/search/jql", params={"jql": jql + " ORDER BY key ASC", "fields": "summary"}
    )
    assert response.status_code == 200, response.text
    return [issue["key"] for issue in response.json()["issues"]]


def test_jql_clauses_and_boolean_logic(alice: httpx.Client, jira_emulator: EmulatorHandle) -> None:
    bob_id = jira_emulator.users[1].account_id
    create(alice, "One", labels=["x"])
    create(alice, "Two", labels=["y"], assignee={"accountId": bob_id})
    create(alice, "Three")
    alice.post(f"{V3}/issue/DEMO-3/transitions", json={"transition": {"id": "21"}})

    assert keys(alice, "project = demo") == ["DEMO-1", "DEMO-2", "DEMO-3"]
    assert keys(alice, "key in (DEMO-1, demo-3)") == ["DEMO-1", "DEMO-3"]
    assert keys(alice, 'status = "In Progress"') == ["DEMO-3"]
    assert keys(alice, "status in ('To Do') and labels = x") == ["DEMO-1"]
    assert keys(
        alice, "labels = x OR (assignee = currentUser() OR assignee = bob@example.com)"
    ) == [
        "DEMO-1",
        "DEMO-2",
    ]
    assert keys(alice, f"assignee = {bob_id}") == ["DEMO-2"]
    assert keys(alice, "assignee is EMPTY") == ["DEMO-1", "DEMO-3"]
    # Like Jira, "!=" skips issues where the field is empty.
    assert keys(alice, "labels != x") == ["DEMO-2"]
    assert keys(alice, "project = DEMO AND NOT labels = y") == ["DEMO-1", "DEMO-3"]
    assert keys(alice, "key > DEMO-1 AND key <= DEMO-2") == ["DEMO-2"]
    assert keys(alice, 'summary ~ "two"') == ["DEMO-2"]


def test_jql_text_search_reads_summary_and_description(alice: httpx.Client) -> None:
    create(alice, "Needle summary")
    create(alice, "Plain", description=doc(paragraph("a ", text("needle", "strong"), " here")))
    create(alice, "Other", description=doc(paragraph("only hay")))
    assert keys(alice, "summary ~ needle") == ["DEMO-1"]
    assert keys(alice, 'description ~ "NEEDLE here"') == ["DEMO-2"]
    assert keys(alice, "text ~ needle") == ["DEMO-1", "DEMO-2"]
    # Like "!=", "!~" never matches an empty field.
    assert keys(alice, "project = DEMO AND description !~ needle") == ["DEMO-3"]
    assert keys(alice, "description is EMPTY") == ["DEMO-1"]


def test_jql_date_literals_are_read_in_the_searchers_time_zone(tmp_path: Path) -> None:
    start = datetime(2025, 1, 31, 13, 0, tzinfo=UTC)  # 14:00 in Berlin, 08:00 in New York
    emulator = JiraEmulator(clock=Clock(start=start))
    with serve(emulator) as jira:
        alice = httpx.Client(base_url=jira.url, auth=jira.basic_auth(0))
        bob = httpx.Client(base_url=jira.url, auth=jira.basic_auth(1))
        create(alice)
        assert keys(alice, 'created >= "2025/01/31 14:00"') == ["DEMO-1"]
        assert keys(alice, 'created >= "2025/01/31 14:01"') == []
        assert keys(alice, 'created >= "2025-01-31" AND created < "2025-02-01"') == ["DEMO-1"]
        assert keys(bob, 'created >= "2025/01/31 08:00"') == ["DEMO-1"]
        assert keys(bob, 'created > "2025/01/31 08:01"') == []
        epoch_ms = int(start.timestamp() * 1000)
        assert keys(alice, f"updated >= {epoch_ms}") == ["DEMO-1"]
        assert keys(alice, f"updated >= {epoch_ms + 60_000}") == []
        assert keys(alice, "updated >= -5m") == ["DEMO-1"]
        emulator.clock.advance(timedelta(minutes=10))
        assert keys(alice, "updated >= -5m") == []
        assert keys(alice, "updated >= -1d") == ["DEMO-1"]
        alice.close()
        bob.close()
    emulator.close()


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = ", "Expecting either a value, list or function but got 'EOF'"),
        ("project DEMO", "Expecting operator but got 'DEMO'"),
        ('summary ~ "open', "The quoted string 'open' has not been completed"),
        ("(project = DEMO", "Expecting ')' before the end of the query"),
        ("project = DEMO AND", "Expecting a field name but reached the end of the query"),
        ("fixVersion = 1", "Field 'fixVersion' does not exist"),
        ("status = Nonsense", "The value 'Nonsense' does not exist for the field 'status'."),
        ("status ~ Done", "The operator '~' is not supported by the 'status' field."),
        ('updated > "31/01/2025"', "Date value '31/01/2025' for field 'updated' is invalid."),
        ("project = DEMO ORDER BY labels", "Field 'labels' does not support sorting."),
        ("ORDER BY key", "Unbounded JQL queries are not allowed here."),
        ("", "Unbounded JQL queries are not allowed here."),
        ("project = DEMO & x", "The character '&' is a reserved JQL character."),
        ("key in (DEMO-1, DEMO-999)", "An issue with key 'DEMO-999' does not exist for field"),
        ("issuekey = 99999", "An issue with key '99999' does not exist for field 'issuekey'."),
    ],
)
def test_bad_jql_answers_400_with_jiras_message(
    reader: httpx.Client, jql: str, message: str
) -> None:
    response = reader.get(f"{V3}/search/jql", params={"jql": jql})
    assert response.status_code == 400
    (reported,) = errors_shape(response)["errorMessages"]
    assert message in reported


def test_syntax_errors_name_the_position(reader: httpx.Client) -> None:
    response = reader.get(f"{V3}/search/jql", params={"jql": "project = DEMO AND status Done"})
    assert response.json()["errorMessages"][0].endswith("(line 1, character 27)")


# -- metadata --------------------------------------------------------------------------------


def test_metadata_endpoints(reader: httpx.Client) -> None:
    fields = {f["id"]: f for f in reader.get(f"{V3}/field").json()}
    assert fields["customfield_10011"]["name"] == "Story Points"
    assert fields["customfield_10011"]["custom"] is True
    assert fields["customfield_10020"]["schema"]["type"] == "option"
    assert fields["status"]["custom"] is False
    assert [p["key"] for p in reader.get(f"{V3}/project").json()] == ["DEMO"]
    project = reader.get(f"{V3}/project/demo").json()
    assert {t["name"] for t in project["issueTypes"]} == {"Task", "Bug", "Story", "Epic", "Subtask"}
    missing = reader.get(f"{V3}/project/NOPE")
    assert missing.status_code == 404 and errors_shape(missing)["errorMessages"]
    assert reader.get(f"{V2}/priority").json()[0]["name"] == "Highest"
    assert {s["name"] for s in reader.get(f"{V3}/status").json()} == {
        "To Do",
        "In Progress",
        "In Review",
        "Done",
    }
    assert reader.get(f"{V3}/serverInfo").json()["deploymentType"] == "Cloud"


# -- bad input and robustness -------------------------------------------------------------


def test_malformed_json_and_wrong_shapes_answer_400(alice: httpx.Client) -> None:
    for body in (b"{not json", b"", b"[1, 2]", b"\xff\xfe"):
        response = alice.post(
            f"{V3}/issue", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert errors_shape(response)["errorMessages"]
    unknown = alice.post(f"{V3}/search/jql", json={"jql": "project = DEMO", "startAt": 5})
    assert unknown.status_code == 400
    assert 'Unrecognized field "startAt"' in unknown.json()["errorMessages"][0]
    wrong_type = alice.post(f"{V3}/search/jql", json={"jql": "project = DEMO", "maxResults": "9"})
    assert wrong_type.status_code == 400


def test_huge_bodies_answer_413(jira_emulator: EmulatorHandle, alice: httpx.Client) -> None:
    limit = jira_emulator.emulator.max_body_bytes
    response = alice.post(f"{V3}/issue", content=b"x" * (limit + 1))
    assert response.status_code == 413
    assert errors_shape(response)["errorMessages"]
    assert alice.get(f"{V3}/myself").status_code == 200  # still serving


def test_unknown_paths_404_and_wrong_methods_405(alice: httpx.Client) -> None:
    for path in (f"{V3}/nothing/here", "/rest/api/4/myself", "/rest/whatever"):
        response = alice.get(path)
        assert response.status_code == 404
        assert errors_shape(response)["errorMessages"]
    response = alice.patch(f"{V3}/myself")
    assert response.status_code == 405
    assert errors_shape(response)["errorMessages"]


def test_a_failing_handler_answers_500_without_a_traceback(
    jira_emulator: EmulatorHandle, alice: httpx.Client
) -> None:
    class Broken:
        async def before(self, call: ApiCall) -> None:
            raise RuntimeError("secret internals")

        async def after(self, call: ApiCall, response: Any) -> None:
            return None

    jira_emulator.emulator.add_hook(Broken())
    response = alice.get(f"{V3}/myself")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert errors_shape(response)["errorMessages"] == ["Internal server error."]


def test_hooks_and_listeners_see_writes(jira_emulator: EmulatorHandle, alice: httpx.Client) -> None:
    events: list[IssueEvent] = []
    calls: list[ApiCall] = []

    class Recorder:
        async def before(self, call: ApiCall) -> None:
            return None

        async def after(self, call: ApiCall, response: Any) -> None:
            calls.append(call)

    unsubscribe = jira_emulator.emulator.on_change(events.append)
    jira_emulator.emulator.add_hook(Recorder())
    key = create(alice)
    alice.put(f"{V3}/issue/{key}", json={"fields": {"summary": "Renamed"}})
    alice.get(f"{V3}/search/jql", params={"jql": "project = DEMO"})
    alice.delete(f"{V3}/issue/{key}")
    unsubscribe()
    create(alice)
    assert [e.kind for e in events] == ["created", "updated", "deleted"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[1].history is not None
    assert events[1].history.items[0].to_string == "Renamed"
    assert events[1].user.email == "alice@example.com"
    assert [(c.method, c.is_write, c.issue_keys, c.status) for c in calls] == [
        ("POST", True, [key], 201),
        ("PUT", True, [key], 204),
        ("GET", False, [], 200),
        ("DELETE", True, [key], 204),
        ("POST", True, ["DEMO-2"], 201),
    ]


def test_search_lag_hides_fresh_writes_unless_reconciled(
    jira_emulator: EmulatorHandle, alice: httpx.Client
) -> None:
    emulator = jira_emulator.emulator
    create(alice, "Old")
    emulator.search_lag = timedelta(seconds=30)
    create(alice, "New")
    alice.put(f"{V3}/issue/DEMO-1", json={"fields": {"summary": "Old renamed"}})

    def summaries(**params: Any) -> list[str]:
        body = alice.get(
            f"{V3}/search/jql",
            params={"jql": "project = DEMO ORDER BY key", "fields": "summary", **params},
        ).json()
        return [issue["fields"]["summary"] for issue in body["issues"]]

    assert summaries() == ["Old"]
    assert alice.get(f"{V3}/issue/DEMO-2").status_code == 200  # GET by key is consistent
    assert summaries(reconcileIssues="10001") == ["Old", "New"]
    emulator.clock.advance(31)
    assert summaries() == ["Old renamed", "New"]


# -- state -------------------------------------------------------------------------------


def test_state_file_keeps_issues_and_changelog_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "jira.sqlite"
    first = JiraEmulator(issues=20, seed=5, state_file=state)
    with serve(first) as jira, httpx.Client(base_url=jira.url, auth=jira.basic_auth(0)) as client:
        key = create(client, "Survives", labels=["kept"])
        client.put(f"{V3}/issue/{key}", json={"fields": {"summary": "Survives restarts"}})
        note = {"add": {"body": doc(paragraph("kept too"))}}
        client.put(f"{V3}/issue/{key}", json={"update": {"comment": [note]}})
        client.delete(f"{V3}/issue/DEMO-3")
        before = client.get(f"{V3}/issue/{key}", params={"expand": "changelog"}).json()
    first.close()

    second = JiraEmulator(issues=20, seed=99, state_file=state)  # an existing file is not re-seeded
    with serve(second) as jira, httpx.Client(base_url=jira.url, auth=jira.basic_auth(0)) as client:
        after = client.get(f"{V3}/issue/{key}", params={"expand": "changelog"}).json()
        assert without_host(after) == without_host(before)
        assert after["fields"]["comment"]["total"] == 1
        assert client.get(f"{V3}/issue/DEMO-3").status_code == 404
        assert len(search_all(client, "project = DEMO", 100)) == 20
        assert create(client) == "DEMO-22"  # numbering continues
    second.close()


def test_concurrent_writers_leave_a_consistent_state_file(tmp_path: Path) -> None:
    state = tmp_path / "jira.sqlite"
    emulator = JiraEmulator(issues=5, seed=1, state_file=state)
    writers, rounds = 6, 15
    with serve(emulator) as jira:

        def write(n: int) -> None:
            with httpx.Client(base_url=jira.url, auth=jira.basic_auth(n % 2)) as client:
                for i in range(rounds):
                    issue = f"DEMO-{1 + (n + i) % 5}"
                    response = client.put(
                        f"{V3}/issue/{issue}", json={"fields": {"summary": f"writer {n} round {i}"}}
                    )
                    assert response.status_code == 204
                    assert create(client, f"made by {n}/{i}")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with httpx.Client(base_url=jira.url, auth=jira.basic_auth(0)) as client:
            live = {
                k: client.get(f"{V3}/issue/{k}", params={"expand": "changelog"}).json()
                for k in search_all(client, "project = DEMO", 100)
            }
    emulator.close()
    assert len(live) == 5 + writers * rounds
    histories = sum(issue["changelog"]["total"] for issue in live.values())
    assert histories == writers * rounds  # every PUT changed the summary

    reopened = JiraEmulator(state_file=state)
    with (
        serve(reopened) as jira,
        httpx.Client(base_url=jira.url, auth=jira.basic_auth(0)) as client,
    ):
        for key, issue in live.items():
            again = client.get(f"{V3}/issue/{key}", params={"expand": "changelog"}).json()
            assert without_host(again) == without_host(issue)
    reopened.close()


def test_seeding_is_deterministic(reader: httpx.Client) -> None:
    def snapshot(emulator: JiraEmulator) -> list[tuple[str, Any, Any, Any]]:
        return [
            (i.key, i.values["summary"], i.values["status"], i.values["labels"])
            for i in sorted(emulator.store.current(), key=lambda i: i.id)
        ]

    a, b, c = (
        JiraEmulator(issues=50, seed=7),
        JiraEmulator(issues=50, seed=7),
        JiraEmulator(issues=50, seed=8),
    )
    assert snapshot(a) == snapshot(b) != snapshot(c)
    statuses = {s for _, _, s, _ in snapshot(a)}
    assert len(statuses) == 4  # spread across the workflow
    updated = {i.values["updated"] for i in a.store.current()}
    assert len(updated) == 50  # varied `updated` times
    for emulator in (a, b, c):
        emulator.close()


# -- the command line ------------------------------------------------------------------------


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "corral.cli",
            "jira-emulator",
            "--port",
            "0",
            "--issues",
            "12",
            "--user",
            "carol@example.com:carol-token:Asia/Tokyo",
            "--state",
            str(tmp_path / "state.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Jira emulator at http://127.0.0.1:"), first
        url = first.split(" at ", 1)[1].strip()
        banner = [process.stdout.readline() for _ in range(3)]
        assert "user carol@example.com  api token carol-token" in banner[1]
        me = httpx.get(f"{url}{V3}/myself", auth=("carol@example.com", "carol-token")).json()
        assert me["timeZone"] == "Asia/Tokyo"
        found = httpx.post(
            f"{url}{V3}/search/jql",
            json={"jql": "project = DEMO", "maxResults": 100},
            headers={"Authorization": "Bearer carol-token"},
        ).json()
        assert len(found["issues"]) == 12
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, out + err


def test_cli_rejects_a_bad_user_spec() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "corral.cli", "jira-emulator", "--user", "no-colon"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert "EMAIL:TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_the_app_mounts_in_another_asgi_app() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    emulator = JiraEmulator(issues=3)
    outer = Starlette(routes=[Mount("/jira", app=emulator.app)])
    transport = httpx.ASGITransport(app=outer)

    async def call() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
            response = await client.get(
                "/jira/rest/api/3/search/jql",
                params={"jql": "project = DEMO", "fields": "summary"},
                auth=emulator.users[0].basic_auth(),
            )
            body: dict[str, Any] = response.json()
            return body

    import asyncio

    body = asyncio.run(call())
    assert len(body["issues"]) == 3
    assert body["issues"][0]["self"].startswith("http://host/jira/rest/api/3/issue/")
    emulator.close()


def test_json_bodies_round_trip_unicode(alice: httpx.Client) -> None:
    key = create(alice, "Grüße, 日本語 ✓")
    raw = alice.get(f"{V3}/issue/{key}", params={"fields": "summary"})
    assert raw.headers["content-type"].startswith("application/json")
    assert json.loads(raw.content)["fields"]["summary"] == "Grüße, 日本語 ✓"
