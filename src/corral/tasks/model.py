"""The task model: tasks, upsert items, links, changes, filters and pages, with their JSON forms.

Everything a plugin sends is validated here, so error messages can name the offending field
(``tasks[3].due_date: ...``) before a store opens a transaction.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from corral._errors import Conflict, InvalidInput

__all__ = [
    "MAX_LINK_KEYS",
    "Change",
    "ChangeOp",
    "JSONValue",
    "Link",
    "Page",
    "Task",
    "TaskFilter",
    "TaskUpsert",
    "UpsertLink",
    "check_version",
    "format_timestamp",
]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
ChangeOp = Literal["create", "update", "delete"]
_T = TypeVar("_T")

# Not `\d`: it matches any Unicode digit, which `date.fromisoformat` then rejects less clearly.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def format_timestamp(moment: datetime) -> str:
    """`moment` in the stores' timestamp form: UTC, milliseconds, ``Z``.

    One fixed-width form makes timestamps order correctly as text, which is how stores compare
    them.
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_version(task_id: str | None, expected: int | None, actual: int) -> None:
    """Raise `Conflict` unless `expected` is None or equals `actual` (0: no such task)."""
    if expected is not None and expected != actual:
        name = f"task {_show(task_id)}" if task_id else "a new task"
        state = f"is at version {actual}" if actual else "does not exist (version 0)"
        raise Conflict(f"{name} {state}, not the expected version {expected}")


# --- field parsers: (value, where) -> validated value -------------------------------------------


def _show(value: object) -> str:
    """The JSON form of a bad value for an error message, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _invalid(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where}: {problem}")


_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _type_name(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _invalid(where, f"expected a string, got {_type_name(value)}")
    return value


def _name(value: object, where: str) -> str:
    text = _text(value, where)
    if not text.strip():
        raise _invalid(where, "must not be empty")
    return text


def _optional_name(value: object, where: str) -> str | None:
    return None if value is None else _name(value, where)


def _labels(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _invalid(where, f"expected an array of strings, got {_type_name(value)}")
    # A label is a set member (one task_labels row each): repeats collapse, first one wins.
    return list(dict.fromkeys(_name(item, f"{where}[{i}]") for i, item in enumerate(value)))


def _due_date(value: object, where: str) -> str | None:
    if value is None:
        return None
    text = _text(value, where)
    if _DATE.fullmatch(text):
        try:
            date.fromisoformat(text)
            return text
        except ValueError:
            pass
    raise _invalid(where, f"{_show(text)} is not a date (YYYY-MM-DD)")


def _timestamp(value: object, where: str) -> str:
    text = _text(value, where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(where, f"{_show(text)} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise _invalid(where, f"{_show(text)} has no time zone (add Z for UTC)")
    return format_timestamp(moment)


def _version(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(where, f"expected a version number (0 or more), got {_show(value)}")
    return value


def _json_value(value: object, where: str) -> JSONValue:
    """A copy of `value`, which must be plain JSON data (no NaN, no non-string keys)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(where, f"{value} is not a JSON number")
        return value
    if isinstance(value, list):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return _json_object(value, where)
    raise _invalid(where, f"{type(value).__name__} is not a JSON value")


def _json_object(value: object, where: str) -> dict[str, JSONValue]:
    if not isinstance(value, dict):
        raise _invalid(where, f"expected an object, got {_type_name(value)}")
    if not value:
        return {}
    text = _plain_json_text(value)
    if text is not None:
        copy: dict[str, JSONValue] = json.loads(text)
        return copy
    for key in value:
        if not isinstance(key, str):
            raise _invalid(where, f"key {key!r} is not a string")
    return {key: _json_value(item, f"{where}.{key}") for key, item in value.items()}


# One encoder for every snapshot: `json.dumps` with options builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain_json_text(value: dict[Any, Any] | list[Any]) -> str | None:
    """`value` as compact JSON text if it is plain JSON data, else None.

    The C encoder checks a batch's snapshots many times faster than `_json_value` walks them,
    which the callers do only for data that fails here, to name the bad part. `dumps` alone is
    not enough: it quietly turns tuples into arrays and number keys into strings, so the
    containers are checked as well, by exact type (a subclass goes the slow way)."""
    try:
        text = _COMPACT.encode(value)
    except (TypeError, ValueError):
        return None
    if _plain_containers(value):
        return text
    return text if json.loads(text) == value else None


def _plain_containers(value: object) -> bool:
    """Whether `value` is built of exactly lists, dicts with string keys, and JSON scalars.

    Walking it is a few times faster than reading the text back. False is no verdict: a
    subclass of one of these types may still be plain JSON, which the read-back decides."""
    # Scalars are checked in the loops, not in a call each: most values are scalars.
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _JSON_SCALARS and not _plain_containers(item):
                return False
        return True
    if type(value) is list:
        for item in value:
            if type(item) not in _JSON_SCALARS and not _plain_containers(item):
                return False
        return True
    return type(value) in _JSON_SCALARS


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _snapshot(value: object, where: str) -> str:
    """A link snapshot as JSON text: a string must already be JSON text; any other JSON value
    is encoded."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError as exc:
            raise _invalid(where, f"not JSON text ({exc.msg} at {exc.pos})") from None
        return value
    if isinstance(value, dict | list):
        text = _plain_json_text(value)
        if text is not None:
            return text
    return _COMPACT.encode(_json_value(value, where))


_Parser = Callable[[object, str], Any]


def _fields_of(data: object, where: str, parsers: dict[str, _Parser]) -> dict[str, Any]:
    """The keys of the JSON object `data`, each validated by its parser; unknown keys fail."""
    if not isinstance(data, dict):
        raise _invalid(where, f"expected an object, got {_type_name(data)}")
    values = {}
    for key, value in data.items():
        parser = parsers.get(key)
        if parser is None:
            raise _invalid(f"{where}.{key}", "unknown field")
        well_formed = _WELL_FORMED.get(parser)
        if well_formed is not None and well_formed(value):
            values[key] = value
        else:
            values[key] = parser(value, f"{where}.{key}")
    return values


def _is_name(value: object) -> bool:
    # `isspace` and `strip` agree on what whitespace is; "" is not all whitespace.
    return type(value) is str and value != "" and not value.isspace()


# For the parsers that return a good value unchanged: a check of that value without the field's
# path, which a batch would otherwise format for every field of every item.
_WELL_FORMED: dict[_Parser, Callable[[object], bool]] = {
    _text: lambda value: type(value) is str,
    _name: _is_name,
    _optional_name: lambda value: value is None or _is_name(value),
    _version: lambda value: type(value) is int and value >= 0,
    _due_date: lambda value: value is None,
}


# Fields a writer sets.
_WRITABLE: dict[str, _Parser] = {
    "id": _name,
    "title": _name,
    "description": _text,
    "status": _name,
    "priority": _name,
    "assignee": _optional_name,
    "labels": _labels,
    "due_date": _due_date,
    "custom_fields": _json_object,
}
# Fields only the store sets.
_STORED: dict[str, _Parser] = {
    "created_at": _text,
    "updated_at": _text,
    "version": _version,
}
_TASK_KEYS = _WRITABLE | _STORED
TASK_FIELDS = tuple(_TASK_KEYS)
"""The keys of a task's JSON object."""


_LINK_KEYS: dict[str, _Parser] = {"system": _name, "external_key": _name, "snapshot": _snapshot}


def _upsert_link(value: object, where: str) -> UpsertLink:
    values = _fields_of(value, where, _LINK_KEYS)
    for key in ("system", "external_key", "snapshot"):
        if key not in values:
            raise _invalid(f"{where}.{key}", "required")
    return UpsertLink(**values)


MAX_LINK_KEYS = 500
"""The most external keys one ``links`` filter names: a page of remote records, and one list
of bound parameters within every database's limit (SQLite before 3.32 allows 999)."""


def _link_keys(value: object, where: str) -> tuple[str, tuple[str, ...]]:
    """A ``links`` filter: ``{"system": ..., "external_keys": [...]}``."""
    values = _fields_of(value, where, {"system": _name, "external_keys": _key_list})
    for key in ("system", "external_keys"):
        if key not in values:
            raise _invalid(f"{where}.{key}", "required")
    return values["system"], values["external_keys"]


def _key_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _invalid(where, f"expected an array of strings, got {_type_name(value)}")
    if len(value) > MAX_LINK_KEYS:
        raise _invalid(where, f"{len(value)} keys; the most per query is {MAX_LINK_KEYS}")
    return tuple(dict.fromkeys(_name(item, f"{where}[{i}]") for i, item in enumerate(value)))


_UPSERT_KEYS = _TASK_KEYS | {"expected_version": _version, "link": _upsert_link}
_FILTER_KEYS: dict[str, _Parser] = {
    "status": _name,
    "assignee": _name,
    "label": _name,
    "updated_since": _text,  # normalized by TaskFilter itself, however it is made
    "linked": _name,
    "unlinked": _name,
    "links": _link_keys,
}


# --- tasks ---------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Task:
    """A task of the host application.

    `created_at`, `updated_at` and `version` are set by the store; a task not stored yet has
    ``""`` and version 0.
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    title: str
    description: str = ""
    status: str = "todo"
    priority: str = "medium"
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    due_date: str | None = None
    """ISO date, YYYY-MM-DD."""
    custom_fields: dict[str, JSONValue] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    version: int = 0

    def to_json(self) -> dict[str, Any]:
        """The task as a JSON object (a new dict)."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "priority": self.priority,
            "assignee": self.assignee,
            "labels": list(self.labels),
            "due_date": self.due_date,
            "custom_fields": dict(self.custom_fields),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: object, *, where: str = "task") -> Task:
        """Validate a task's JSON object. Only `title` is required.

        Raises `InvalidInput` naming the field, prefixed with `where` (e.g. ``tasks[3]``).
        """
        values = _fields_of(data, where, _TASK_KEYS)
        if "title" not in values:
            raise _invalid(f"{where}.title", "required")
        return cls(**values)


@dataclass(frozen=True)
class UpsertLink:
    """The link a `put_many` item writes with its task, in the same transaction."""

    system: str
    external_key: str
    snapshot: str
    """JSON text."""


@dataclass
class TaskUpsert:
    """One validated item of a `put_many` batch.

    The JSON form is any task field plus an optional ``expected_version``. `created_at`,
    `updated_at` and `version` are accepted and ignored, so a task read from the store can be
    written back as it is.
    """

    where: str
    """Where the item came from, for error messages (``tasks[3]``)."""
    id: str | None
    """None: create a task with a new id."""
    values: dict[str, Any]
    """The fields to set, validated; `id` is not among them."""
    expected_version: int | None
    """If set, the stored version must equal it (0: the task must not exist)."""
    link: UpsertLink | None = None
    """A link of the writing plugin to this task, written in the same transaction."""

    @classmethod
    def from_json(cls, data: object, *, where: str) -> TaskUpsert:
        """Validate one batch item; raises `InvalidInput` naming the field."""
        values = _fields_of(data, where, _UPSERT_KEYS)
        for key in _STORED:
            values.pop(key, None)
        upsert = cls(
            where=where,
            id=values.pop("id", None),
            expected_version=values.pop("expected_version", None),
            link=values.pop("link", None),
            values=values,
        )
        if upsert.link_only and upsert.id is None:
            raise _invalid(f"{where}.id", "required for an item that only writes a link")
        return upsert

    @property
    def link_only(self) -> bool:
        """Whether the item writes its link and leaves the task as it is (no new version, no
        change-feed entry)."""
        return self.link is not None and not self.values

    def create(self, now: str) -> Task:
        """The new task this item describes, stored at `now`."""
        if "title" not in self.values:
            raise _invalid(f"{self.where}.title", "required when creating a task")
        new_id: dict[str, Any] = {} if self.id is None else {"id": self.id}
        return Task(**new_id, **self.values, created_at=now, updated_at=now, version=1)

    def apply(self, current: Task, now: str) -> Task:
        """`current` with this item's fields replaced, updated at `now`."""
        return replace(current, **self.values, updated_at=now, version=current.version + 1)


# --- links, changes, filters, pages --------------------------------------------------------------


@dataclass(kw_only=True)
class Link:
    """A task's counterpart in an external system, private to the plugin that made it.

    Unique on (plugin, system, external_key).
    """

    plugin: str
    system: str
    external_key: str
    task_id: str
    snapshot: str
    """JSON text: the last state both sides agreed on (the base of a three-way merge)."""
    updated_at: str = ""
    """Set by the store."""

    def validate(self) -> None:
        """Raise `InvalidInput` naming the first bad field."""
        for name in ("plugin", "system", "external_key", "task_id"):
            _name(getattr(self, name), f"link.{name}")
        try:
            json.loads(_text(self.snapshot, "link.snapshot"))
        except json.JSONDecodeError as exc:
            raise _invalid("link.snapshot", f"not JSON text ({exc.msg} at {exc.pos})") from None


@dataclass(kw_only=True)
class Change:
    """One entry of the change feed: a task's create, update or delete."""

    seq: int
    """Position in the feed: strictly increasing, in commit order."""
    task_id: str
    op: ChangeOp
    actor: str
    """``"host"`` for the host application, else the writing plugin's name."""
    at: str
    version: int
    """The version the change produced; for a delete, the version that was deleted."""
    task: dict[str, Any] | None
    """The task's JSON object after the change; None for a delete, and for a change by the
    reader's own actor when it asked for those bare (`TaskStore.changes_since`)."""

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON object."""
        return {
            "seq": self.seq,
            "task_id": self.task_id,
            "op": self.op,
            "actor": self.actor,
            "at": self.at,
            "version": self.version,
            "task": self.task,
        }


@dataclass(kw_only=True)
class TaskFilter:
    """What `TaskStore.query` returns; every condition given must hold.

    The linked/unlinked conditions come in pairs: a system and the plugin whose links count.
    """

    status: str | None = None
    assignee: str | None = None
    label: str | None = None
    updated_since: str | None = None
    """Only tasks updated at or after this ISO-8601 timestamp (normalized to the store's form)."""
    linked_system: str | None = None
    linked_plugin: str | None = None
    linked_keys: tuple[str, ...] | None = None
    """With `linked_system`: only tasks linked there by one of these external keys."""
    unlinked_system: str | None = None
    unlinked_plugin: str | None = None

    def __post_init__(self) -> None:
        if self.updated_since is not None:
            # Stores compare timestamps as text, which only works in one form.
            self.updated_since = _timestamp(self.updated_since, "filter.updated_since")
        for kind in ("linked", "unlinked"):
            system, plugin = getattr(self, f"{kind}_system"), getattr(self, f"{kind}_plugin")
            if (system is None) != (plugin is None):
                raise InvalidInput(f"filter: {kind}_system and {kind}_plugin go together")
        if self.linked_keys is not None and self.linked_system is None:
            raise InvalidInput("filter: linked_keys needs linked_system")

    @classmethod
    def from_json(cls, data: object, *, plugin: str | None = None) -> TaskFilter:
        """Validate a filter object: ``status``, ``assignee``, ``label``, ``updated_since``,
        ``linked`` and ``unlinked`` (system names), ``links`` (``{"system": ...,
        "external_keys": [...]}``: tasks linked in that system by one of these keys), all
        optional.

        `plugin` is whose links ``linked``/``unlinked``/``links`` look at; it is never read
        from `data`, so a plugin cannot look at another's links.
        """
        values = _fields_of(data, "filter", _FILTER_KEYS)
        if "links" in values:
            if "linked" in values:
                raise _invalid("filter.links", "give either linked or links, not both")
            values["linked"], values["linked_keys"] = values.pop("links")
        for kind in ("linked", "unlinked"):
            if kind in values:
                if plugin is None:
                    name = "links" if "linked_keys" in values else kind
                    raise _invalid(f"filter.{name}", "links belong to a plugin, and none was given")
                values[f"{kind}_system"] = values.pop(kind)
                values[f"{kind}_plugin"] = plugin
        return cls(**values)


@dataclass
class Page(Generic[_T]):
    """One page of results, and where the next one starts."""

    items: list[_T]
    next_cursor: str | None = None
    """Pass it back for the next page. For `query`, None on the last page; for
    `changes_since`, None only when nothing was new (keep the cursor you had)."""
