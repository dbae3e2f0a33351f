"""Property-based tests of the emulator's search: JQL against an independent evaluator, and
`nextPageToken` paging with any page size, also while issues change between pages.

Everything goes through the REST API over loopback, as a client would see it. Examples are
bounded so the module stays within a few seconds on a small shared machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.testing.jira import EmulatorHandle
from jira_fixtures import api_client, new_task, running

SEEDED = 120
PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,  # real HTTP on a shared 2-core machine: latency varies, results must not
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FIELDS = "key,status,assignee,labels,created,updated"
MAX_PAGES = 500  # more than any query here needs: paging that never ends fails, not hangs


@dataclass(frozen=True)
class Row:
    """What the test knows of one issue, read through the API."""

    key: str
    number: int
    status: str
    assignee: str | None
    labels: frozenset[str]
    created: datetime
    updated: datetime


def jira_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def row(issue: dict[str, Any]) -> Row:
    fields = issue["fields"]
    return Row(
        key=issue["key"],
        number=int(issue["key"].split("-")[1]),
        status=fields["status"]["name"],
        assignee=(fields.get("assignee") or {}).get("accountId"),
        labels=frozenset(fields.get("labels") or ()),
        created=jira_time(fields["created"]),
        updated=jira_time(fields["updated"]),
    )


def search(
    client: httpx.Client,
    jql: str,
    page_size: int,
    fields: str = "key",
    between_pages: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Every issue of `jql`, page by page; `between_pages` runs after each non-last page."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        body: dict[str, Any] = {"jql": jql, "fields": fields.split(","), "maxResults": page_size}
        if token:
            body["nextPageToken"] = token
        response = client.post("/rest/api/3/search/jql", json=body)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["issues"]) <= page_size
        found.extend(page["issues"])
        token = page.get("nextPageToken")
        if page["isLast"]:
            assert token is None
            return found
        assert token, "a page that is not the last must carry a nextPageToken"
        if between_pages is not None:
            between_pages()
    raise AssertionError(f"{jql}: still not on the last page after {MAX_PAGES} pages")


@pytest.fixture(scope="module")
def jira() -> Iterator[EmulatorHandle]:
    with running(issues=SEEDED, seed=5) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(jira: EmulatorHandle) -> Iterator[httpx.Client]:
    with api_client(jira, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def rows(client: httpx.Client) -> list[Row]:
    return [row(i) for i in search(client, "project = DEMO", 100, FIELDS)]


@pytest.fixture(scope="module")
def zone(client: httpx.Client) -> ZoneInfo:
    return ZoneInfo(client.get("/rest/api/3/myself").json()["timeZone"])


# -- JQL: generated queries, evaluated independently ----------------------------------------


@dataclass(frozen=True)
class Jql:
    """A generated query: its text and what it means for one row."""

    text: str
    matches: Callable[[Row], bool]


def quoted(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def clauses(rows: list[Row], zone: ZoneInfo) -> st.SearchStrategy[Jql]:
    keys = sorted(r.key for r in rows)
    statuses = sorted({r.status for r in rows})
    labels = sorted({label for r in rows for label in r.labels})
    assignees = sorted({r.assignee for r in rows if r.assignee})
    instants = sorted({r.updated for r in rows} | {r.created for r in rows})

    def equals(name: str, values: list[str], get: Callable[[Row], Any]) -> st.SearchStrategy[Jql]:
        return st.sampled_from(values).map(
            lambda v: Jql(f"{name} = {quoted(v)}", lambda r: get(r) == v)
        )

    def within(name: str, values: list[str], get: Callable[[Row], Any]) -> st.SearchStrategy[Jql]:
        return st.lists(st.sampled_from(values), min_size=1, max_size=4, unique=True).map(
            lambda vs: Jql(
                f"{name} in ({', '.join(quoted(v) for v in vs)})", lambda r: get(r) in vs
            )
        )

    def moment(name: str) -> st.SearchStrategy[Jql]:
        ops: dict[str, Callable[[datetime, datetime], bool]] = {
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
        }

        def build(op: str, base: datetime, shift: int, form: str) -> Jql:
            at = base + timedelta(minutes=shift)
            local = at.astimezone(zone)
            if form == "epoch":
                bound, literal = at, str(int(at.timestamp() * 1000))
            elif form == "minute":
                bound = local.replace(second=0, microsecond=0)
                literal = quoted(local.strftime("%Y/%m/%d %H:%M"))
            else:
                bound = local.replace(hour=0, minute=0, second=0, microsecond=0)
                literal = quoted(local.strftime("%Y-%m-%d"))
            compare = ops[op]
            return Jql(f"{name} {op} {literal}", lambda r: compare(getattr(r, name), bound))

        return st.builds(
            build,
            st.sampled_from(sorted(ops)),
            st.sampled_from(instants),
            st.integers(-90, 90),
            st.sampled_from(["epoch", "minute", "day"]),
        )

    options = [
        st.just(Jql("project = DEMO", lambda r: True)),
        equals("key", keys, lambda r: r.key),
        within("key", keys, lambda r: r.key),
        equals("status", statuses, lambda r: r.status),
        within("status", statuses, lambda r: r.status),
        moment("updated"),
        moment("created"),
    ]
    if labels:
        options.append(
            st.sampled_from(labels).map(
                lambda v: Jql(f"labels = {quoted(v)}", lambda r: v in r.labels)
            )
        )
    if assignees:
        options.append(equals("assignee", assignees, lambda r: r.assignee))
    return st.one_of(options)


def queries(rows: list[Row], zone: ZoneInfo) -> st.SearchStrategy[Jql]:
    def combine(children: st.SearchStrategy[Jql]) -> st.SearchStrategy[Jql]:
        def join(word: str, a: Jql, b: Jql) -> Jql:
            if word == "AND":
                return Jql(f"({a.text}) AND ({b.text})", lambda r: a.matches(r) and b.matches(r))
            return Jql(f"({a.text}) OR ({b.text})", lambda r: a.matches(r) or b.matches(r))

        return st.builds(join, st.sampled_from(["AND", "OR"]), children, children)

    return st.recursive(clauses(rows, zone), combine, max_leaves=4)


ORDERS: dict[str, Callable[[Row], Any]] = {
    "key": lambda r: r.number,
    "created": lambda r: r.created,
    "updated": lambda r: r.updated,
}


@st.composite
def orderings(draw: st.DrawFn) -> tuple[str, bool]:
    return draw(st.sampled_from(sorted(ORDERS))), draw(st.booleans())


def assert_in_order(found: list[Row], by: str, descending: bool) -> None:
    values = [ORDERS[by](r) for r in found]
    expected = sorted(values, reverse=descending)
    assert values == expected, f"not ordered by {by} {'DESC' if descending else 'ASC'}"


def test_generated_queries_match_an_independent_evaluator(
    client: httpx.Client, rows: list[Row], zone: ZoneInfo
) -> None:
    @PROPERTY_SETTINGS
    @given(query=queries(rows, zone), order=orderings())
    def check(query: Jql, order: tuple[str, bool]) -> None:
        by, descending = order
        jql = f"{query.text} ORDER BY {by} {'DESC' if descending else 'ASC'}"
        found = [row(i) for i in search(client, jql, 100, FIELDS)]
        keys = [r.key for r in found]
        assert len(keys) == len(set(keys)), f"{jql}: an issue came back twice"
        expected = {r.key for r in rows if query.matches(r)}
        assert set(keys) == expected, (
            f"{jql}: extra {sorted(set(keys) - expected)[:5]}, "
            f"missing {sorted(expected - set(keys))[:5]}"
        )
        assert_in_order(found, by, descending)

    check()


def test_paging_with_any_page_size_returns_every_match_once_in_order(
    client: httpx.Client, rows: list[Row]
) -> None:
    statuses = sorted({r.status for r in rows})

    @PROPERTY_SETTINGS
    @given(
        page_size=st.integers(1, SEEDED + 10),
        order=orderings(),
        status=st.none() | st.sampled_from(statuses),
    )
    def check(page_size: int, order: tuple[str, bool], status: str | None) -> None:
        by, descending = order
        where = "project = DEMO" if status is None else f"status = {quoted(status)}"
        jql = f"{where} ORDER BY {by} {'DESC' if descending else 'ASC'}"
        found = [row(i) for i in search(client, jql, page_size, FIELDS)]
        keys = [r.key for r in found]
        assert len(keys) == len(set(keys)), "an issue came back twice"
        assert set(keys) == {r.key for r in rows if status is None or r.status == status}
        assert_in_order(found, by, descending)

    check()


def test_paging_sees_every_issue_once_while_issues_are_edited_between_pages() -> None:
    with (
        running(issues=60, seed=9) as jira,
        api_client(jira, 0, timeout=30) as alice,
        api_client(jira, 1, timeout=30) as bob,
    ):
        before = {i["key"] for i in search(alice, "project = DEMO", 100)}

        @PROPERTY_SETTINGS
        @given(
            page_size=st.integers(1, 25),
            order=st.sampled_from(["key ASC", "key DESC", "created ASC", "created DESC"]),
            edits=st.lists(st.sampled_from(sorted(before)), min_size=1, max_size=3),
            create=st.booleans(),
        )
        def check(page_size: int, order: str, edits: list[str], create: bool) -> None:
            # one issue created mid-way; one per page would outrun paging by key ASC
            pending_create = create

            def edit_some() -> None:
                nonlocal pending_create
                for key in edits:
                    response = bob.put(
                        f"/rest/api/3/issue/{key}",
                        json={
                            "fields": {"summary": f"edited while paging {page_size}"},
                            "update": {"labels": [{"add": "paging"}]},
                        },
                    )
                    assert response.status_code == 204, response.text
                if pending_create:
                    pending_create = False
                    response = bob.post(
                        "/rest/api/3/issue",
                        json=new_task("made while paging"),
                    )
                    assert response.status_code == 201, response.text

            found = [
                row(i)
                for i in search(
                    alice, f"project = DEMO ORDER BY {order}", page_size, FIELDS, edit_some
                )
            ]
            keys = [r.key for r in found]
            assert len(keys) == len(set(keys)), "an issue came back twice"
            assert before <= set(keys), f"missing {sorted(before - set(keys))[:5]}"
            by, direction = order.split()
            assert_in_order(found, by, direction == "DESC")

        check()


# -- JQL text: spelling does not change meaning; nothing makes it fail with a 500 ----------


def test_spelling_variants_of_a_query_give_the_same_issues(
    client: httpx.Client, rows: list[Row], zone: ZoneInfo
) -> None:
    @PROPERTY_SETTINGS
    @given(
        query=queries(rows, zone),
        and_word=st.sampled_from(["and", "And", "&&"]),
        or_word=st.sampled_from(["or", "oR", "||"]),
        space=st.sampled_from(["", " ", "  ", "\t", "\n"]),
    )
    def check(query: Jql, and_word: str, or_word: str, space: str) -> None:
        plain = {i["key"] for i in search(client, query.text, 100)}
        # joins are the only ") AND (" / ") OR (" in a generated query: values are quoted
        variant = query.text.replace(
            ") AND (", f"){space or ' '}{and_word}{space or ' '}("
        ).replace(") OR (", f"){space or ' '}{or_word}{space or ' '}(")
        variant = f"({space}{variant}{space})"
        assert {i["key"] for i in search(client, variant, 100)} == plain, variant

    check()


JQL_WORDS = [
    "project",
    "key",
    "status",
    "assignee",
    "labels",
    "updated",
    "created",
    "summary",
    "priority",
    "=",
    "!=",
    ">=",
    "<=",
    ">",
    "<",
    "~",
    "in",
    "not",
    "is",
    "and",
    "or",
    "order",
    "by",
    "asc",
    "desc",
    "(",
    ")",
    ",",
    '"',
    "'",
    "EMPTY",
    "null",
    "DEMO",
    "DEMO-1",
    "-5m",
    "-1d",
    "4w 2d",
    "2025/01/31 14:05",
    "2025-01-31",
    "1732877091000",
    "currentUser()",
    "now()",
    "\\",
    "||",
    "&&",
    "!",
]


def test_any_jql_text_answers_200_or_a_jira_400_never_a_crash(client: httpx.Client) -> None:
    texts = st.one_of(
        st.lists(st.sampled_from(JQL_WORDS), max_size=12).map(" ".join),
        st.text(max_size=40),
    )

    @PROPERTY_SETTINGS
    @given(jql=texts, method=st.sampled_from(["GET", "POST"]))
    def check(jql: str, method: str) -> None:
        if method == "GET":
            response = client.get("/rest/api/3/search/jql", params={"jql": jql})
        else:
            response = client.post("/rest/api/3/search/jql", json={"jql": jql})
        assert response.status_code in (200, 400), f"{jql!r}: {response.status_code}"
        body = response.json()
        if response.status_code == 400:
            assert body["errorMessages"] and isinstance(body["errors"], dict), body
        else:
            assert isinstance(body["issues"], list)

    check()
