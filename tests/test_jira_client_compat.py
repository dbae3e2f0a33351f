"""A client written for Jira Cloud (tests/jira_cloud_client.py, from Atlassian's docs) works
against the emulator unchanged: paging, the issue lifecycle, transitions and changelogs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from corral.testing.jira import EmulatorHandle
from jira_cloud_client import JiraCloudClient, JiraError
from jira_fixtures import running

SEEDED = 230  # several pages at the default page size of 50, and a partial last page


@pytest.fixture(scope="module")
def jira() -> Iterator[EmulatorHandle]:
    with running(issues=SEEDED, seed=3) as handle:
        yield handle


def client_for(jira: EmulatorHandle, user: int = 0) -> JiraCloudClient:
    email, token = jira.basic_auth(user)
    return JiraCloudClient(jira.url, email, token)


@pytest.fixture
def alice(jira: EmulatorHandle) -> Iterator[JiraCloudClient]:
    with client_for(jira, 0) as client:
        yield client


@pytest.fixture
def bob(jira: EmulatorHandle) -> Iterator[JiraCloudClient]:
    with client_for(jira, 1) as client:
        yield client


def test_search_pages_through_every_issue_with_next_page_token(alice: JiraCloudClient) -> None:
    issues = list(alice.search("project = DEMO ORDER BY key ASC"))
    keys = [i["key"] for i in issues]
    numbers = [int(k.split("-")[1]) for k in keys]
    assert len(keys) >= SEEDED
    assert len(set(keys)) == len(keys), "an issue came back twice"
    assert numbers == sorted(numbers)
    assert all({"summary", "status", "updated"} <= set(i["fields"]) for i in issues)


def test_search_pages_with_get_and_comma_separated_fields(alice: JiraCloudClient) -> None:
    first = alice.search_get(
        "project = DEMO ORDER BY key ASC", fields="summary,status", max_results=100
    )
    assert len(first["issues"]) <= 100
    assert first["isLast"] is False and first["nextPageToken"]
    second = alice.search_get(
        "project = DEMO ORDER BY key ASC",
        fields="summary,status",
        max_results=100,
        next_page_token=first["nextPageToken"],
    )
    assert not {i["id"] for i in first["issues"]} & {i["id"] for i in second["issues"]}


def test_issue_lifecycle(alice: JiraCloudClient, bob: JiraCloudClient) -> None:
    created = alice.create_issue(
        "DEMO", "Written by a Jira Cloud client", description="From the *docs*.", labels=["compat"]
    )
    key = created["key"]
    assert created["self"].endswith(f"/rest/api/3/issue/{created['id']}")

    issue = alice.get_issue(key)
    assert issue["fields"]["summary"] == "Written by a Jira Cloud client"
    assert issue["fields"]["status"]["name"] == "To Do"
    assert issue["fields"]["description"]["type"] == "doc"
    assert issue["fields"]["reporter"]["accountId"] == alice.myself()["accountId"]

    bob.edit_issue(
        key, fields={"summary": "Renamed by Bob"}, update={"labels": [{"add": "edited"}]}
    )
    bob.transition_to(key, "In Progress")
    issue = alice.get_issue(key, fields="summary,labels,status,updated")
    assert issue["fields"]["summary"] == "Renamed by Bob"
    assert sorted(issue["fields"]["labels"]) == ["compat", "edited"]
    assert issue["fields"]["status"]["name"] == "In Progress"

    entries = list(alice.changelog(key, page_size=1))
    changed = [
        (e["author"]["accountId"], item["field"], item.get("fromString"), item.get("toString"))
        for e in entries
        for item in e["items"]
    ]
    bob_id = bob.myself()["accountId"]
    assert (bob_id, "summary", "Written by a Jira Cloud client", "Renamed by Bob") in changed
    assert (bob_id, "status", "To Do", "In Progress") in changed

    found = list(alice.search(f"key = {key}"))
    assert [i["key"] for i in found] == [key]

    alice.delete_issue(key)
    with pytest.raises(JiraError) as missing:
        alice.get_issue(key)
    assert missing.value.status_code == 404
    assert missing.value.body["errorMessages"]


def test_status_is_changed_only_through_transitions(alice: JiraCloudClient) -> None:
    key = alice.create_issue("DEMO", "Status by edit")["key"]
    with pytest.raises(JiraError) as refused:
        alice.edit_issue(key, fields={"status": {"name": "Done"}})
    assert refused.value.status_code == 400
    assert "cannot be set" in str(refused.value.body)
    with pytest.raises(LookupError):
        alice.transition_to(key, "Done")  # not reachable from To Do in one step


def test_expand_changelog_in_search(alice: JiraCloudClient) -> None:
    key = alice.create_issue("DEMO", "Expand")["key"]
    alice.edit_issue(key, fields={"summary": "Expanded"})
    page = alice.search_page(f"key = {key}", fields=["summary"], expand="changelog")
    (issue,) = page["issues"]
    histories = issue["changelog"]["histories"]
    assert any(item["field"] == "summary" for h in histories for item in h["items"])


def test_myself_reports_the_time_zone_jql_dates_use(
    alice: JiraCloudClient, bob: JiraCloudClient
) -> None:
    assert alice.myself()["timeZone"] != bob.myself()["timeZone"]


def test_wrong_api_token_is_refused(jira: EmulatorHandle) -> None:
    client = JiraCloudClient(jira.url, jira.users[0].email, "not-the-token")
    with client, pytest.raises(JiraError) as refused:
        client.myself()
    assert refused.value.status_code == 401


def test_bearer_token_works_like_data_center_pats(jira: EmulatorHandle) -> None:
    token = jira.users[0].api_token
    response = httpx.get(
        jira.url + "/rest/api/3/myself", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json()["accountId"] == jira.users[0].account_id
