"""The emulator as a test instrument: fault plans, injected faults over real HTTP, webhooks to a
loopback receiver, the admin API and the request log."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.testing.jira import Budget, EmulatorHandle, FaultPlan, FaultSpecError, WebhookTarget
from jira_fixtures import api_client, new_task, running
from openapi_schema import OpenAPISpec


def test_fault_plan_reads_every_item() -> None:
    plan = FaultPlan.parse(
        "429:0.1, 429-write:2/10s,503:0.05,latency:50ms,drop-after-write:1,search-lag:2s,"
        "webhook-duplicate:0.5,webhook-delay:1500ms,retry-after:3s,seed:7"
    )
    assert plan == FaultPlan(
        rate_limit=0.1,
        write_limit=Budget(2, timedelta(seconds=10)),
        unavailable=0.05,
        latency=timedelta(milliseconds=50),
        drop_after_write=1.0,
        search_lag=timedelta(seconds=2),
        webhook_duplicate=0.5,
        webhook_delay=timedelta(milliseconds=1500),
        retry_after=timedelta(seconds=3),
        seed=7,
    )


@pytest.mark.parametrize(
    "spec",
    [
        "none",
        "429:0.25",
        "429:100/1m,latency:1500ms",
        "search-lag:2s,seed:3",
        "429-write:5/2s,drop-after-write:0.5,retry-after:30s",
        "webhook-duplicate:0.1,webhook-delay:2s",
    ],
)
def test_fault_plan_round_trips_through_its_spec(spec: str) -> None:
    plan = FaultPlan.parse(spec)
    assert FaultPlan.parse(str(plan)) == plan


def test_empty_spec_is_no_faults() -> None:
    assert FaultPlan.parse("") == FaultPlan.parse("none") == FaultPlan()
    assert str(FaultPlan()) == "none"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("430:0.1", "unknown fault '430'; known faults: 429, 429-write"),
        ("429", "is not NAME:VALUE"),
        ("429:2", "'2' is not a probability between 0 and 1"),
        ("429:x/1s", "whole number of requests"),
        ("429:5/0s", "window must be longer than zero"),
        ("latency:fast", "'fast' is not a duration like 250ms"),
        ("retry-after:500ms", "whole number of seconds"),
        ("seed:x", "'x' is not an integer"),
        ("503:0.1,503:0.2", "given twice"),
    ],
)
def test_bad_fault_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultPlan.parse(spec)


# -- over real HTTP -------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A loopback HTTP server that records POSTs and answers with scripted statuses."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []  # answered in turn; 200 once empty
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._cond:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"got {len(self.received)} of {count} webhooks"
                self._cond.wait(left)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jira() -> Iterator[EmulatorHandle]:
    with running(issues=5, seed=2) as handle:
        yield handle


@pytest.fixture
def client(jira: EmulatorHandle) -> Iterator[httpx.Client]:
    with api_client(jira) as http:
        yield http


@pytest.fixture
def admin(jira: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jira.url + "/_emulator", timeout=10) as http:
        yield http


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def set_faults(admin: httpx.Client, spec: str) -> None:
    response = admin.put("/faults", json={"spec": spec})
    assert response.status_code == 200, response.text


def assert_jira_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"errorMessages", "errors"} and body["errorMessages"], body
    return body


SPEC = OpenAPISpec.load(Path(__file__).parent / "data" / "jira-openapi-subset.json")
RESET_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$")


def test_burst_rate_limit_answers_429_with_jira_headers(
    client: httpx.Client, admin: httpx.Client
) -> None:
    set_faults(admin, "429:1,retry-after:7s")
    response = client.get("/rest/api/3/myself")
    assert_jira_error(response, 429)
    assert response.headers["Retry-After"] == "7"
    assert response.headers["RateLimit-Reason"] == "jira-burst-based"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Limit"]) > 0
    assert RESET_FORMAT.match(response.headers["X-RateLimit-Reset"])
    set_faults(admin, "none")
    assert client.get("/rest/api/3/myself").status_code == 200


def test_burst_budget_refuses_the_request_over_it_until_the_window_ends(
    jira: EmulatorHandle, client: httpx.Client, admin: httpx.Client
) -> None:
    jira.emulator.clock.advance(60 - jira.emulator.clock.now().timestamp() % 60 + 1)
    set_faults(admin, "429:3/1m")
    assert [client.get("/rest/api/3/myself").status_code for _ in range(3)] == [200] * 3
    refused = client.get("/rest/api/3/myself")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == "3"
    # another user has a budget of its own
    assert client.get("/rest/api/3/myself", auth=jira.basic_auth(1)).status_code == 200
    advanced = admin.post("/clock/advance", json={"seconds": 60})
    assert advanced.status_code == 200, advanced.text
    assert client.get("/rest/api/3/myself").status_code == 200


def test_per_issue_write_limit_refuses_writes_to_that_issue_only(
    client: httpx.Client, admin: httpx.Client
) -> None:
    set_faults(admin, "429-write:2/1h")
    edit = {"fields": {"summary": "busy"}}
    assert [client.put("/rest/api/3/issue/DEMO-1", json=edit).status_code for _ in range(2)] == [
        204,
        204,
    ]
    refused = client.put("/rest/api/3/issue/DEMO-1", json=edit)
    assert_jira_error(refused, 429)
    assert refused.headers["RateLimit-Reason"] == "jira-per-issue-on-write"
    assert client.put("/rest/api/3/issue/DEMO-2", json=edit).status_code == 204
    issue = client.get("/rest/api/3/issue/DEMO-1")
    assert issue.status_code == 200
    # the same issue named by id, or in lower case, shares the budget
    by_id = client.put(f"/rest/api/3/issue/{issue.json()['id']}", json=edit)
    assert by_id.status_code == 429
    assert client.put("/rest/api/3/issue/demo-1", json=edit).status_code == 429


def test_unavailable_answers_503_with_retry_after(
    client: httpx.Client, admin: httpx.Client
) -> None:
    set_faults(admin, "503:1,retry-after:2s")
    response = client.get("/rest/api/3/serverInfo")
    assert_jira_error(response, 503)
    assert response.headers["Retry-After"] == "2"


def test_latency_is_added_to_every_request(client: httpx.Client, admin: httpx.Client) -> None:
    set_faults(admin, "latency:300ms")
    started = time.monotonic()
    assert client.get("/rest/api/3/serverInfo").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_dropped_write_is_applied_but_never_answered(
    client: httpx.Client, admin: httpx.Client
) -> None:
    set_faults(admin, "drop-after-write:1")
    with pytest.raises(httpx.TransportError):
        client.put("/rest/api/3/issue/DEMO-3", json={"fields": {"summary": "applied, unseen"}})
    with pytest.raises(httpx.TransportError):
        client.post(
            "/rest/api/3/issue",
            json=new_task("created, unseen"),
        )
    # reads are not writes: they are answered
    issue = client.get("/rest/api/3/issue/DEMO-3", params={"fields": "summary"})
    assert issue.json()["fields"]["summary"] == "applied, unseen"
    created = client.get("/rest/api/3/issue/DEMO-6", params={"fields": "summary"})
    assert created.json()["fields"]["summary"] == "created, unseen"
    log = admin.get("/requests").json()["requests"]
    assert [r["method"] for r in log if r["path"].startswith("/rest/api/3/issue")][:2] == [
        "PUT",
        "POST",
    ]


def test_search_lag_hides_writes_from_search_until_the_clock_passes_it(
    client: httpx.Client, admin: httpx.Client
) -> None:
    set_faults(admin, "search-lag:30s")
    key = client.post("/rest/api/3/issue", json=new_task("lagging")).json()["key"]
    client.put("/rest/api/3/issue/DEMO-1", json={"fields": {"summary": "edited, lagging"}})
    client.delete("/rest/api/3/issue/DEMO-2")

    def searched(**extra: Any) -> dict[str, str]:
        body = {"jql": "project = DEMO", "maxResults": 100, "fields": ["summary"], **extra}
        page = client.post("/rest/api/3/search/jql", json=body)
        assert page.status_code == 200, page.text
        return {i["key"]: i["fields"]["summary"] for i in page.json()["issues"]}

    lagging = searched()
    assert key not in lagging
    assert lagging["DEMO-1"] != "edited, lagging"
    assert "DEMO-2" in lagging
    assert client.get(f"/rest/api/3/issue/{key}").status_code == 200  # reads are consistent
    # reconcileIssues shows the named issues as they are now, as on Jira
    edited_id = int(client.get("/rest/api/3/issue/DEMO-1").json()["id"])
    assert searched(reconcileIssues=[edited_id])["DEMO-1"] == "edited, lagging"

    admin.post("/clock/advance", json={"by": "31s"})
    caught_up = searched()
    assert key in caught_up
    assert caught_up["DEMO-1"] == "edited, lagging"
    assert "DEMO-2" not in caught_up


def test_faults_set_at_start_and_read_back() -> None:
    with running(faults="503:1") as other, api_client(other) as client:
        assert client.get("/rest/api/3/serverInfo").status_code == 503
        assert client.get("/_emulator/faults").json() == {"spec": "503:1.0"}


def test_bad_fault_spec_through_the_admin_api_is_a_400_naming_it(admin: httpx.Client) -> None:
    body = assert_jira_error(admin.put("/faults", json={"spec": "429:lots"}), 400)
    assert "'429'" in body["errorMessages"][0]
    assert_jira_error(admin.put("/faults", content=b"{"), 400)
    assert admin.get("/faults").json() == {"spec": "none"}


def test_request_log_records_method_path_query_body_and_user(
    jira: EmulatorHandle, client: httpx.Client, admin: httpx.Client
) -> None:
    admin.delete("/requests")
    client.post(
        "/rest/api/3/search/jql",
        params={"validation": "strict"},
        json={"jql": "project = DEMO", "maxResults": 2},
    )
    httpx.get(jira.url + "/rest/api/3/myself")  # no credentials
    log = admin.get("/requests").json()["requests"]
    assert len(log) == 2
    search, anonymous = log
    assert search["method"] == "POST" and search["path"] == "/rest/api/3/search/jql"
    assert search["query"] == {"validation": "strict"}
    assert search["body"] == {"jql": "project = DEMO", "maxResults": 2}
    assert search["user"] == jira.users[0].email and search["status"] == 200
    assert anonymous["user"] is None and anonymous["status"] == 401
    assert admin.delete("/requests").status_code == 204
    assert admin.get("/requests").json()["requests"] == []


def test_admin_reset_seed_and_clock(
    jira: EmulatorHandle, client: httpx.Client, admin: httpx.Client
) -> None:
    def count() -> int:
        page = client.get(
            "/rest/api/3/search/jql", params={"jql": "project = DEMO", "maxResults": 100}
        )
        return len(page.json()["issues"])

    assert admin.post("/reset", json={"issues": 3, "seed": 1}).status_code == 204
    assert count() == 3
    assert admin.post("/seed", json={"issues": 4}).status_code == 204
    assert count() == 7
    before = datetime.fromisoformat(admin.get("/clock").json()["now"])
    after = datetime.fromisoformat(admin.post("/clock/advance", json={"by": "2h"}).json()["now"])
    assert after - before >= timedelta(hours=2)
    assert_jira_error(admin.post("/clock/advance", json={"seconds": -5}), 400)
    assert_jira_error(admin.post("/seed", json={"issues": "many"}), 400)
    assert_jira_error(admin.post("/reset", json=[1]), 400)


def verify(received: Received, secret: str) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Hub-Signature"], expected)


def test_webhooks_fire_signed_for_every_write_by_any_client(
    jira: EmulatorHandle, admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    added = admin.post("/webhooks", json={"url": receiver.url, "secret": "s3cret"})
    assert added.status_code == 201, added.text
    with api_client(jira, 1) as bob:
        key = bob.post(
            "/rest/api/3/issue",
            json=new_task("hooked"),
        ).json()["key"]
        bob.put(f"/rest/api/3/issue/{key}", json={"fields": {"summary": "hooked again"}})
        transition = bob.get(f"/rest/api/3/issue/{key}/transitions").json()["transitions"][0]
        bob.post(
            f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": transition["id"]}}
        )
        bob.delete(f"/rest/api/3/issue/{key}")

    received = receiver.wait_for(4)
    for delivery in received:
        verify(delivery, "s3cret")
        assert "X-Atlassian-Webhook-Retry" not in delivery.headers
    payloads = [d.json() for d in received]
    assert [p["webhookEvent"] for p in payloads] == [
        "jira:issue_created",
        "jira:issue_updated",
        "jira:issue_updated",
        "jira:issue_deleted",
    ]
    assert [p["issue_event_type_name"] for p in payloads] == [
        "issue_created",
        "issue_updated",
        "issue_generic",
        "issue_deleted",
    ]
    assert {p["user"]["accountId"] for p in payloads} == {jira.users[1].account_id}
    assert {p["issue"]["key"] for p in payloads} == {key}
    assert all(isinstance(p["timestamp"], int) for p in payloads)
    (summary,) = payloads[1]["changelog"]["items"]
    assert (summary["field"], summary["fromString"], summary["toString"]) == (
        "summary",
        "hooked",
        "hooked again",
    )
    assert payloads[2]["changelog"]["items"][0]["field"] == "status"
    assert payloads[1]["issue"]["fields"]["summary"] == "hooked again"
    # the issue has the REST API's shape; changelog items carry every key, null or not, as
    # Jira's webhooks do (the REST spec's ChangeDetails does not govern webhook payloads)
    issue_bean = SPEC.validator({"$ref": "#/components/schemas/IssueBean"}, "read")
    item_keys = {"field", "fieldtype", "fieldId", "from", "fromString", "to", "toString"}
    for payload in payloads:
        assert issue_bean.is_valid(payload["issue"]), payload["issue"]
        assert all(set(i) == item_keys for i in payload.get("changelog", {}).get("items", []))


def test_failed_deliveries_are_retried_with_the_retry_header(
    client: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    admin.post("/webhooks", json={"url": receiver.url})
    admin.put("/webhooks/options", json={"backoff": "50ms", "retries": 3})
    receiver.statuses = [503, 429, 200]
    client.put("/rest/api/3/issue/DEMO-1", json={"fields": {"summary": "retried"}})
    received = receiver.wait_for(3)
    assert [d.headers.get("X-Atlassian-Webhook-Retry") for d in received] == [None, "1", "2"]
    assert len({d.headers["X-Atlassian-Webhook-Identifier"] for d in received}) == 1
    assert len({d.body for d in received}) == 1
    assert "X-Hub-Signature" not in received[0].headers  # no secret, no signature
    time.sleep(0.2)
    assert len(receiver.received) == 3, "a delivered webhook was retried"
    deliveries = admin.get("/webhooks/deliveries").json()["deliveries"]
    assert [d["status"] for d in deliveries] == [503, 429, 200]


def test_duplicate_and_delayed_deliveries(
    client: httpx.Client, admin: httpx.Client, receiver: WebhookReceiver
) -> None:
    admin.post("/webhooks", json={"url": receiver.url, "secret": "k"})
    set_faults(admin, "webhook-duplicate:1,webhook-delay:1s")
    started = time.monotonic()
    response = client.put("/rest/api/3/issue/DEMO-2", json={"fields": {"summary": "twice"}})
    answered = time.monotonic() - started
    assert response.status_code == 204
    first, again = receiver.wait_for(2)
    assert time.monotonic() - started >= 1
    assert answered < 1, "webhook delays must not hold up the API"
    assert first.body == again.body
    assert again.headers["X-Atlassian-Webhook-Retry"] == "1"
    verify(again, "k")


def test_an_unreachable_receiver_does_not_slow_the_api(
    client: httpx.Client, admin: httpx.Client
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/gone"
    admin.post("/webhooks", json={"url": dead})
    admin.put("/webhooks/options", json={"backoff": "10ms", "retries": 2})
    started = time.monotonic()
    for n in range(5):
        assert (
            client.put(
                "/rest/api/3/issue/DEMO-1", json={"fields": {"summary": f"n{n}"}}
            ).status_code
            == 204
        )
    assert time.monotonic() - started < 2
    listed = admin.get("/webhooks").json()
    assert listed["webhooks"] == [{"url": dead, "signed": False}]
    assert admin.request("DELETE", "/webhooks", json={"url": dead}).status_code == 204
    assert_jira_error(admin.request("DELETE", "/webhooks", json={"url": dead}), 404)


def test_webhooks_configured_at_start(receiver: WebhookReceiver) -> None:
    targets = [WebhookTarget(receiver.url, "from-start")]
    with running(issues=1, webhooks=targets) as jira, api_client(jira) as client:
        client.put("/rest/api/3/issue/DEMO-1", json={"fields": {"summary": "at start"}})
        (delivery,) = receiver.wait_for(1)
        verify(delivery, "from-start")
        assert delivery.json()["issue"]["fields"]["summary"] == "at start"
