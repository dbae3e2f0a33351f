"""The JQL subset a sync client needs, compiled to a filter and a sort key over issues.

The syntax is `_jql_syntax`'s; this module gives clauses their meaning. Errors (`JqlError`)
carry Jira's wording and become 400 answers.
Date literals (``"2025/01/31 14:05"``, ``"2025-01-31"``) are read in the searching user's
time zone; numbers are epoch milliseconds; ``-5m``, ``-1d``, ``4w 2d`` are relative to now.
Like Jira, ``!=``, ``!~`` and ``NOT IN`` never match an empty field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ._adf import adf_to_text
from ._catalog import Catalog
from ._jql_syntax import BoolOp, Clause, JqlError, Node, Operand, Sort, parse
from ._model import Issue, User

__all__ = ["JqlError", "Query", "SortKey", "compile_jql"]

SortKey = tuple[tuple[Any, ...], ...]
Predicate = Callable[[Issue], bool]

_DATE_FORMATS = (
    "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', "
    "'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
)


# -- compiling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A compiled query: which issues match, in which order.

    `time_dependent` is true when the query reads "now" (relative dates, `now()`), so its
    results change with the clock alone. `sort_key(issue)` is a tuple of comparable parts
    (the issue id last, so keys are unique); page tokens carry the key of the last issue.
    """

    matches: Predicate
    sort_key: Callable[[Issue], SortKey]
    bounded: bool
    time_dependent: bool = False


@dataclass
class _Context:
    catalog: Catalog
    user: User
    users: Sequence[User]
    now: datetime
    issue_exists: Callable[[str], bool]
    time_dependent: bool = False


_FIELD_ALIASES = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "status": "status",
    "assignee": "assignee",
    "reporter": "reporter",
    "creator": "creator",
    "labels": "labels",
    "label": "labels",
    "priority": "priority",
    "issuetype": "issuetype",
    "type": "issuetype",
    "summary": "summary",
    "description": "description",
    "text": "text",
    "updated": "updated",
    "updateddate": "updated",
    "created": "created",
    "createddate": "created",
    "resolved": "resolutiondate",
    "resolutiondate": "resolutiondate",
    "due": "duedate",
    "duedate": "duedate",
}


def compile_jql(
    text: str,
    *,
    catalog: Catalog,
    user: User,
    users: Sequence[User],
    now: datetime,
    issue_exists: Callable[[str], bool] = lambda id_or_key: True,
) -> Query:
    """Parse and compile `text` for `user` (whose time zone reads date literals) at `now`.

    Like Jira, a clause naming an issue key or id that `issue_exists` denies is an error,
    not an empty match.
    """
    where, sorts = parse(text)
    ctx = _Context(catalog=catalog, user=user, users=users, now=now, issue_exists=issue_exists)
    predicate = _compile(where, ctx) if where is not None else (lambda issue: True)
    sort_key = _compile_sort(sorts)
    return Query(
        matches=predicate,
        sort_key=sort_key,
        bounded=where is not None,
        time_dependent=ctx.time_dependent,
    )


def _compile(node: Node, ctx: _Context) -> Predicate:
    if isinstance(node, BoolOp):
        parts = [_compile(p, ctx) for p in node.parts]
        if node.op == "NOT":
            inner = parts[0]
            return lambda issue: not inner(issue)
        if node.op == "AND":
            return lambda issue: all(p(issue) for p in parts)
        return lambda issue: any(p(issue) for p in parts)
    return _compile_clause(node, ctx)


def _field_of(name: str) -> str:
    found = _FIELD_ALIASES.get(name.lower())
    if found is None:
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")
    return found


_EQUALITY = ("=", "!=", "IN", "NOT IN", "IS", "IS NOT")
_ORDERING = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "IS", "IS NOT")
_SUPPORTED = {
    "project": _EQUALITY,
    "key": _ORDERING,
    "status": _EQUALITY,
    "assignee": _EQUALITY,
    "reporter": _EQUALITY,
    "creator": _EQUALITY,
    "labels": _EQUALITY,
    "priority": _ORDERING,
    "issuetype": _EQUALITY,
    "summary": ("~", "!~", "IS", "IS NOT"),
    "description": ("~", "!~", "IS", "IS NOT"),
    "text": ("~",),
    "updated": _ORDERING,
    "created": _ORDERING,
    "resolutiondate": _ORDERING,
    "duedate": _ORDERING,
}


def _compile_clause(clause: Clause, ctx: _Context) -> Predicate:
    name = _field_of(clause.field)
    op = clause.operator
    if op not in _SUPPORTED[name]:
        raise JqlError(f"The operator '{op}' is not supported by the '{clause.field}' field.")
    if op in ("IN", "NOT IN") and not clause.is_list:
        raise JqlError(
            f"The operator '{op}' requires a list of values, e.g. {clause.field} {op} (a, b)."
        )
    if op not in ("IN", "NOT IN") and clause.is_list:
        raise JqlError(f"The operator '{op}' does not support a list of values.")
    if op in ("IS", "IS NOT"):
        if not clause.operands[0].empty:
            raise JqlError(
                f"The operator '{op}' only supports the values EMPTY and NULL, "
                f"not '{clause.operands[0].text}'."
            )
        stored = _STORED[name]
        if op == "IS":
            return lambda issue: _is_empty(stored(issue))
        return lambda issue: not _is_empty(stored(issue))
    if name in ("summary", "description", "text"):
        return _compile_contains(name, clause)
    if name in ("updated", "created", "resolutiondate", "duedate"):
        return _compile_time(name, clause, ctx)
    return _compile_values(name, clause, ctx)


def _is_empty(value: Any) -> bool:
    return value is None or value == () or value == ""


_STORED: dict[str, Callable[[Issue], Any]] = {
    "project": lambda issue: issue.key.rsplit("-", 1)[0],
    "key": lambda issue: issue.id,
    "status": lambda issue: issue.values.get("status"),
    "assignee": lambda issue: issue.values.get("assignee"),
    "reporter": lambda issue: issue.values.get("reporter"),
    "creator": lambda issue: issue.values.get("creator"),
    "labels": lambda issue: issue.values.get("labels") or (),
    "priority": lambda issue: issue.values.get("priority"),
    "issuetype": lambda issue: issue.values.get("issuetype"),
    "summary": lambda issue: issue.values.get("summary"),
    "description": lambda issue: issue.values.get("description"),
    "updated": lambda issue: issue.values.get("updated"),
    "created": lambda issue: issue.values.get("created"),
    "resolutiondate": lambda issue: issue.values.get("resolutiondate"),
    "duedate": lambda issue: issue.values.get("duedate"),
}


def _compile_contains(name: str, clause: Clause) -> Predicate:
    """`~` and `!~`: every word of the operand occurs in the field's text (any case).

    `text` searches the summary and the description (as plain text, read from its ADF).
    """
    words = [w for w in re.split(r"\W+", clause.operands[0].text.lower()) if w]
    negate = clause.operator == "!~"

    def searched(issue: Issue) -> str:
        parts = []
        if name in ("summary", "text"):
            parts.append(str(issue.values.get("summary") or ""))
        if name in ("description", "text"):
            parts.append(adf_to_text(issue.values.get("description")))
        return " ".join(parts).lower()

    def contains(issue: Issue) -> bool:
        haystack = searched(issue)
        if negate and not haystack.strip():
            return False
        return all(w in haystack for w in words) != negate

    return contains


def _no_value(value: Operand, field_name: str) -> JqlError:
    return JqlError(f"The value '{value.text}' does not exist for the field '{field_name}'.")


def _resolve(name: str, operand: Operand, clause: Clause, ctx: _Context) -> Any:
    """The stored form of one operand of an equality clause (None for EMPTY)."""
    if operand.empty:
        return None
    if operand.function:
        if operand.text.lower() == "currentuser" and name in ("assignee", "reporter", "creator"):
            return ctx.user.account_id
        raise JqlError(
            f"Unable to find JQL function '{operand.text}()'."
            if operand.text.lower() != "currentuser"
            else f"The function 'currentUser' is not supported by the '{clause.field}' field."
        )
    text = operand.text
    catalog = ctx.catalog
    if name == "project":
        if text.upper() == catalog.project_key or text == catalog.project_id:
            return catalog.project_key
        raise _no_value(operand, clause.field)
    if name == "key":
        if not text.isdigit() and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*-\d+", text) is None:
            raise JqlError(f"The issue key '{text}' for field '{clause.field}' is invalid.")
        if not ctx.issue_exists(text):
            raise JqlError(f"An issue with key '{text}' does not exist for field '{clause.field}'.")
        return int(text) if text.isdigit() else text.upper()
    if name == "status":
        status = catalog.status(text)
        if status is None:
            raise _no_value(operand, clause.field)
        return status.id
    if name in ("assignee", "reporter", "creator"):
        for user in ctx.users:
            if text in (user.account_id, user.email):
                return user.account_id
        raise _no_value(operand, clause.field)
    if name == "priority":
        priority = catalog.priority(text)
        if priority is None:
            raise _no_value(operand, clause.field)
        return priority.id
    if name == "issuetype":
        issue_type = catalog.issue_type(text)
        if issue_type is None:
            raise _no_value(operand, clause.field)
        return issue_type.id
    return text  # labels


def _compile_values(name: str, clause: Clause, ctx: _Context) -> Predicate:
    wanted = [_resolve(name, o, clause, ctx) for o in clause.operands]
    op = clause.operator
    if name == "key":
        return _compile_keys(wanted, clause, ctx)
    stored = _STORED[name]
    if name == "labels":
        labels = set(wanted)

        def has_label(issue: Issue) -> bool:
            present = stored(issue)
            if not present:
                return None in labels
            return any(label in labels for label in present)

        if op in ("=", "IN"):
            return has_label
        # Jira: "labels != x" and "labels NOT IN (...)" skip issues without labels.
        return lambda issue: bool(stored(issue)) and not has_label(issue)
    if name == "priority" and op in ("<", "<=", ">", ">="):
        # Priority order: Highest ("1") is the greatest.
        bound = -int(wanted[0])
        return _ordered(lambda issue: -int(stored(issue) or 0), op, bound)
    values = set(wanted)
    if op in ("=", "IN"):
        return lambda issue: stored(issue) in values
    return lambda issue: stored(issue) is not None and stored(issue) not in values


def _compile_keys(wanted: list[Any], clause: Clause, ctx: _Context) -> Predicate:
    # Keys name issues: compare by id for "=", by number for ranges (`key > DEMO-100`).
    op = clause.operator
    keys = {w for w in wanted if isinstance(w, str)}
    ids = {w for w in wanted if isinstance(w, int)}
    if op in ("<", "<=", ">", ">="):
        target = wanted[0]
        if not isinstance(target, str):
            raise JqlError(f"The issue key '{target}' for field '{clause.field}' is invalid.")
        number = int(target.rsplit("-", 1)[1])
        return _ordered(lambda issue: issue.number, op, number)

    def named(issue: Issue) -> bool:
        return issue.key in keys or issue.id in ids

    if op in ("=", "IN"):
        return named
    return lambda issue: not named(issue)


def _ordered(value_of: Callable[[Issue], Any], op: str, bound: Any) -> Predicate:
    def check(issue: Issue) -> bool:
        value = value_of(issue)
        if value is None:
            return False
        if op == "<":
            return bool(value < bound)
        if op == "<=":
            return bool(value <= bound)
        if op == ">":
            return bool(value > bound)
        if op == ">=":
            return bool(value >= bound)
        if op == "=":
            return bool(value == bound)
        return bool(value != bound)

    return check


_LITERAL = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?")
_PERIOD = re.compile(r"(\d+)([wdhm])", re.IGNORECASE)
_UNITS = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}


def _instant(operand: Operand, clause: Clause, ctx: _Context) -> datetime:
    """The moment an operand of a date clause names."""
    text = operand.text.strip()
    zone = ZoneInfo(ctx.user.time_zone)
    invalid = JqlError(
        f"Date value '{operand.text}' for field '{clause.field}' is invalid. {_DATE_FORMATS}"
    )
    if operand.function:
        ctx.time_dependent = True
        local = ctx.now.astimezone(zone)
        function = text.lower()
        if function == "now":
            return ctx.now
        if function == "startofday":
            return datetime.combine(local.date(), time(), zone)
        if function == "endofday":
            return datetime.combine(local.date(), time(23, 59, 59, 999000), zone)
        raise JqlError(f"Unable to find JQL function '{operand.text}()'.")
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=zone)
    literal = _LITERAL.fullmatch(text)
    if literal:
        year, month, day, hour, minute = literal.groups()
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=zone
            )
        except ValueError:
            raise invalid from None
    compact = text.replace(" ", "")
    if compact and re.fullmatch(r"[+-]?(\d+[wdhm])+", compact, re.IGNORECASE):
        ctx.time_dependent = True
        sign = -1 if compact.startswith("-") else 1
        total = sum((_UNITS[u.lower()] * int(n) for n, u in _PERIOD.findall(compact)), timedelta())
        return ctx.now + sign * total
    raise invalid


def _compile_time(name: str, clause: Clause, ctx: _Context) -> Predicate:
    op = clause.operator
    stored = _STORED[name]
    if any(o.empty for o in clause.operands):
        raise JqlError(f"The operator '{op}' does not support the value EMPTY; use IS EMPTY.")
    if name == "duedate":
        # A due date is a day, compared with the day the operand falls on (user's zone).
        zone = ZoneInfo(ctx.user.time_zone)
        days = [_instant(o, clause, ctx).astimezone(zone).date() for o in clause.operands]

        def as_date(issue: Issue) -> date | None:
            due = stored(issue)
            return date.fromisoformat(due) if due else None

        if op in ("IN", "NOT IN"):
            wanted = set(days)
            inside = op == "IN"
            return lambda issue: as_date(issue) is not None and (as_date(issue) in wanted) == inside
        return _ordered(as_date, op, days[0])
    instants = [_instant(o, clause, ctx) for o in clause.operands]
    if op in ("IN", "NOT IN"):
        wanted_instants = set(instants)
        inside = op == "IN"
        return lambda issue: (
            stored(issue) is not None and (stored(issue) in wanted_instants) == inside
        )
    return _ordered(stored, op, instants[0])


# -- sorting --------------------------------------------------------------------------------

_SORTABLE = (
    "updated",
    "created",
    "key",
    "priority",
    "status",
    "duedate",
    "summary",
    "resolutiondate",
    "issuetype",
)


def _directed(value: Any, descending: bool) -> tuple[Any, ...]:
    """A comparable, JSON-friendly form of a sort value; empties sort last either way."""
    if value is None or value == "":
        return (1,)
    if isinstance(value, datetime):
        number: Any = int(value.timestamp() * 1000)
    elif isinstance(value, str) and not value.isdigit():
        codes = [ord(c) for c in value.lower()]
        # Negated code points plus a greater terminator reverse string order exactly.
        return (0, *[-c for c in codes], 1) if descending else (0, *codes, -1)
    else:
        number = int(value) if isinstance(value, str) else value
    return (0, -number if descending else number)


def _sort_value(name: str, issue: Issue) -> Any:
    if name == "key":
        return issue.number
    if name == "priority":
        # Ascending runs from Lowest to Highest; ids run the other way.
        priority = issue.values.get("priority")
        return None if priority is None else -int(priority)
    return issue.values.get(name)


def _compile_sort(sorts: tuple[Sort, ...]) -> Callable[[Issue], SortKey]:
    fields: list[tuple[str, bool]] = []
    for sort in sorts:
        name = _FIELD_ALIASES.get(sort.field.lower())
        if name is None:
            raise JqlError(
                f"Field '{sort.field}' does not exist or you do not have permission to view it."
            )
        if name not in _SORTABLE:
            raise JqlError(f"Field '{sort.field}' does not support sorting.")
        fields.append((name, sort.descending))
    if not fields:
        # Without ORDER BY, newest first (Jira's default for a bare filter is `created DESC`).
        fields = [("created", True)]
    tie_descending = fields[-1][1]

    def key(issue: Issue) -> SortKey:
        return (
            *(_directed(_sort_value(name, issue), desc) for name, desc in fields),
            (-issue.id if tie_descending else issue.id,),
        )

    return key
