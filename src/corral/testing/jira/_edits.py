"""Turning the `fields` and `update` of a create, edit or transition into stored values.

Errors are collected per field, as Jira reports them (``errors: {"summary": "..."}``), so a
client sees every problem of a request at once, and nothing is written unless all is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._catalog import DEFAULT_PRIORITY
from ._errors import JiraError
from ._fields import FIELDS_BY_ID, FieldError, RenderContext, parse_value
from ._model import User

__all__ = ["check_update_details", "creation_values", "edit_values"]

_SUPPORTED_OPERATIONS = {"labels": ("set", "add", "remove")}


def _cannot_set(name: str) -> str:
    return f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."


def check_update_details(body: Any) -> Mapping[str, Any]:
    """`body` if it has the shape of the spec's IssueUpdateDetails; 400 otherwise.

    Jira refuses such bodies before looking at any field, with one message for the request.
    """
    if not isinstance(body, Mapping):
        raise JiraError(400, ["Cannot deserialize the request: expected a JSON object"])
    expected = {
        "fields": Mapping,
        "update": Mapping,
        "properties": list,
        "transition": Mapping,
        "historyMetadata": Mapping,
    }
    for name, kind in expected.items():
        if body.get(name) is not None and not isinstance(body[name], kind):
            wanted = "an object" if kind is Mapping else "an array"
            raise JiraError(400, [f"Cannot deserialize '{name}': expected {wanted}"])
    for name, operations in (body.get("update") or {}).items():
        if not isinstance(operations, list) or not all(
            isinstance(op, Mapping) and len(op) == 1 for op in operations
        ):
            raise JiraError(
                400, [f"Cannot deserialize 'update.{name}': expected a list of single operations"]
            )
    if not all(isinstance(p, Mapping) for p in body.get("properties") or ()):
        raise JiraError(400, ["Cannot deserialize 'properties': expected objects"])
    transition = body.get("transition")
    if transition is not None and not isinstance(transition.get("id", ""), str):
        raise JiraError(400, ["Cannot deserialize 'transition.id': expected a string"])
    return body


def _object(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value: Mapping[str, Any] = body.get(name) or {}
    return value


NewComment = Callable[[Any], dict[str, Any]]
"""Makes the stored form of a new comment from its ADF body (id, author, time)."""


def edit_values(
    body: Mapping[str, Any],
    ctx: RenderContext,
    current: Mapping[str, Any],
    *,
    creating: bool = False,
    new_comment: NewComment | None = None,
) -> dict[str, Any]:
    """Field id → new stored value for `body`'s `fields` and `update`; 400 on any error.

    `body` must have passed `check_update_details`.

    `current` holds the issue's values (empty when creating), which `add`/`remove` build on.
    With `new_comment`, ``update: {"comment": [{"add": {"body": ...}}]}`` adds comments.
    """
    fields = _object(body, "fields")
    update = _object(body, "update")
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    settable_here = {"project"} if creating else set()
    for name, raw in fields.items():
        spec = FIELDS_BY_ID.get(name)
        if spec is None or not (
            spec.settable and (spec.kind != "project" or name in settable_here)
        ):
            errors[name] = _cannot_set(name)
            continue
        try:
            changes[name] = parse_value(spec, raw, ctx)
        except FieldError as error:
            errors[name] = str(error)
    for name, operations in update.items():
        if name == "comment" and new_comment is not None:
            try:
                changes[name] = _add_comments(operations, ctx, current, new_comment)
            except FieldError as error:
                errors[name] = str(error)
            continue
        spec = FIELDS_BY_ID.get(name)
        if spec is None or not spec.settable or spec.kind == "project":
            errors[name] = _cannot_set(name)
            continue
        if name in fields:
            errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."
            continue
        value = current.get(name)
        supported = _SUPPORTED_OPERATIONS.get(name, ("set",))
        try:
            for operation in operations:
                ((verb, raw),) = operation.items()
                if verb not in supported:
                    listed = ", ".join(f"'{s}'" for s in supported)
                    raise FieldError(
                        f"Field '{name}' does not support operation '{verb}' "
                        f"Supported operation(s) are: {listed}"
                    )
                if verb == "set":
                    value = parse_value(spec, raw, ctx)
                else:
                    (label,) = parse_value(spec, [raw], ctx)
                    labels = tuple(value or ())
                    value = (
                        (*labels, label)
                        if verb == "add" and label not in labels
                        else tuple(x for x in labels if x != label)
                        if verb == "remove"
                        else labels
                    )
        except FieldError as error:
            errors[name] = str(error)
            continue
        changes[name] = value
    if errors:
        raise JiraError(400, errors=errors)
    return changes


def _add_comments(
    operations: list[Mapping[str, Any]],
    ctx: RenderContext,
    current: Mapping[str, Any],
    new_comment: NewComment,
) -> tuple[dict[str, Any], ...]:
    comments = tuple(current.get("comment") or ())
    for operation in operations:
        ((verb, raw),) = operation.items()
        if verb != "add":
            raise FieldError(
                f"Field 'comment' does not support operation '{verb}' "
                "Supported operation(s) are: 'add'"
            )
        if not isinstance(raw, Mapping) or raw.get("body") is None:
            raise FieldError("Comment body can not be empty!")
        adf = parse_value(FIELDS_BY_ID["description"], raw["body"], ctx)
        if adf is None:
            raise FieldError("Comment body can not be empty!")
        comments = (*comments, new_comment(adf))
    return comments


def creation_values(
    body: Mapping[str, Any], ctx: RenderContext, user: User, initial_status: str
) -> dict[str, Any]:
    """All stored values of a new issue: `edit_values` plus the fields Jira fills in."""
    check_update_details(body)
    try:
        changes = edit_values(body, ctx, {}, creating=True)
        missing: dict[str, str] = {}
    except JiraError as error:
        if error.messages:
            raise
        changes, missing = {}, dict(error.errors)
    fields = _object(body, "fields")
    if "project" not in fields:
        missing.setdefault("project", "Specify a valid project ID or key")
    if "issuetype" not in fields:
        missing.setdefault("issuetype", "Specify an issue type")
    if "summary" not in fields and "summary" not in _object(body, "update"):
        missing.setdefault("summary", "You must specify a summary of the issue.")
    if missing:
        raise JiraError(400, errors=missing)
    return {
        "project": ctx.catalog.project_key,
        "status": initial_status,
        "priority": DEFAULT_PRIORITY,
        "reporter": user.account_id,
        "assignee": None,
        "labels": (),
        "description": None,
        "duedate": None,
        "resolution": None,
        "resolutiondate": None,
        "customfield_10011": None,
        "customfield_10020": None,
        **changes,
        "creator": user.account_id,
    }
