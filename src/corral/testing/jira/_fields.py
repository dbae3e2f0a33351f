"""Issue fields: what `GET /field` lists, how each value renders, parses and shows in changelogs.

A field's `kind` decides all three; stored values are compact (ids, account ids, ADF, datetime)
and rendered per request, because the JSON depends on the API version (ADF or wiki markup)
and on the base URL in `self` links.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ._adf import adf_to_wiki, is_document, wiki_to_adf
from ._catalog import Catalog
from ._model import ChangeItem, User

__all__ = [
    "FIELDS",
    "FIELDS_BY_ID",
    "FieldError",
    "FieldSpec",
    "RenderContext",
    "change_item",
    "format_time",
    "parse_value",
    "render_value",
]


@dataclass(frozen=True)
class FieldSpec:
    id: str
    name: str
    kind: str
    schema: Mapping[str, Any]
    #: Can a create or edit set it through `fields`? (status, dates and creator cannot)
    settable: bool = True
    navigable: bool = True
    custom: bool = False
    clause_names: tuple[str, ...] = ()

    def details_json(self) -> dict[str, Any]:
        """This field as `GET /field` lists it."""
        body: dict[str, Any] = {
            "id": self.id,
            "key": self.id,
            "name": self.name,
            "custom": self.custom,
            "orderable": self.settable,
            "navigable": self.navigable,
            "searchable": True,
            "clauseNames": list(self.clause_names or (self.id,)),
            "schema": dict(self.schema),
        }
        if self.custom:
            body["clauseNames"] = [f"cf[{self.id.rsplit('_', 1)[1]}]", self.name]
        return body


def _system(id: str, name: str, kind: str, type_: str, **more: Any) -> FieldSpec:
    schema: dict[str, Any] = {"type": type_, "system": id}
    if type_ == "array":
        schema["items"] = "string"
    return FieldSpec(id=id, name=name, kind=kind, schema=schema, **more)


def _custom(number: int, name: str, kind: str, type_: str, custom_type: str) -> FieldSpec:
    return FieldSpec(
        id=f"customfield_{number}",
        name=name,
        kind=kind,
        custom=True,
        schema={
            "type": type_,
            "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{custom_type}",
            "customId": number,
        },
    )


FIELDS: tuple[FieldSpec, ...] = (
    _system("summary", "Summary", "string", "string"),
    _system("description", "Description", "richtext", "string"),
    _system(
        "issuetype", "Issue Type", "issuetype", "issuetype", clause_names=("issuetype", "type")
    ),
    _system("project", "Project", "project", "project"),
    _system("status", "Status", "status", "status", settable=False),
    _system("priority", "Priority", "priority", "priority"),
    _system("assignee", "Assignee", "user", "user"),
    _system("reporter", "Reporter", "user", "user"),
    _system("creator", "Creator", "user", "user", settable=False),
    _system("labels", "Labels", "labels", "array"),
    _system("duedate", "Due date", "date", "date", clause_names=("due", "duedate")),
    _system("resolution", "Resolution", "resolution", "resolution", settable=False),
    _system(
        "resolutiondate",
        "Resolved",
        "datetime",
        "datetime",
        settable=False,
        clause_names=("resolved", "resolutiondate"),
    ),
    _system(
        "created",
        "Created",
        "datetime",
        "datetime",
        settable=False,
        clause_names=("created", "createdDate"),
    ),
    _system(
        "updated",
        "Updated",
        "datetime",
        "datetime",
        settable=False,
        clause_names=("updated", "updatedDate"),
    ),
    _system("comment", "Comment", "comments", "comments-page", settable=False, navigable=False),
    _custom(10011, "Story Points", "number", "number", "float"),
    _custom(10020, "Team", "option", "option", "select"),
)
FIELDS_BY_ID: dict[str, FieldSpec] = {f.id: f for f in FIELDS}


class FieldError(ValueError):
    """A field's input value is not acceptable; the message is Jira's, for `errors[field]`."""


@dataclass(frozen=True)
class RenderContext:
    base: str
    api: int
    catalog: Catalog
    users: Mapping[str, User]  # by account id


def format_time(moment: datetime) -> str:
    """Jira's timestamp format: ``2021-01-18T23:45:00.000+0000`` (always UTC here)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def user_json(account_id: str, ctx: RenderContext) -> dict[str, Any]:
    user = ctx.users.get(account_id)
    avatar = f"{ctx.base}/secure/useravatar?ownerId={account_id}"
    body: dict[str, Any] = {
        "self": f"{ctx.base}/rest/api/{ctx.api}/user?accountId={account_id}",
        "accountId": account_id,
        "avatarUrls": {
            size: f"{avatar}&size={size}" for size in ("48x48", "24x24", "16x16", "32x32")
        },
        "displayName": user.display_name if user else "Former user",
        "active": user is not None,
        "accountType": "atlassian",
    }
    if user is not None:
        body["emailAddress"] = user.email
        body["timeZone"] = user.time_zone
    return body


def comment_json(comment: Mapping[str, Any], ctx: RenderContext, issue_id: int) -> dict[str, Any]:
    """One stored comment (``id``, ``author``, ADF ``body``, ISO ``created``) as Jira shows it."""
    author = user_json(comment["author"], ctx)
    created = format_time(datetime.fromisoformat(comment["created"]))
    return {
        "self": f"{ctx.base}/rest/api/{ctx.api}/issue/{issue_id}/comment/{comment['id']}",
        "id": comment["id"],
        "author": author,
        "body": comment["body"] if ctx.api == 3 else adf_to_wiki(comment["body"]),
        "updateAuthor": author,
        "created": created,
        "updated": created,
        "jsdPublic": True,
    }


def render_value(spec: FieldSpec, value: Any, ctx: RenderContext, issue_id: int) -> Any:
    """The JSON of a stored field value."""
    kind = spec.kind
    if kind == "comments":
        comments = [comment_json(c, ctx, issue_id) for c in value or ()]
        return {
            "comments": comments,
            "self": f"{ctx.base}/rest/api/{ctx.api}/issue/{issue_id}/comment",
            "maxResults": len(comments),
            "total": len(comments),
            "startAt": 0,
        }
    if value is None:
        return [] if kind == "labels" else None
    catalog = ctx.catalog
    if kind in ("string", "number", "date"):
        return value
    if kind == "richtext":
        return value if ctx.api == 3 else adf_to_wiki(value)
    if kind == "labels":
        return list(value)
    if kind == "datetime":
        return format_time(value)
    if kind == "user":
        return user_json(value, ctx)
    if kind == "issuetype":
        found = catalog.issue_type(value)
        return catalog.issue_type_json(found, ctx.base, ctx.api) if found else None
    if kind == "project":
        return catalog.project_json(ctx.base, ctx.api)
    if kind == "status":
        status = catalog.status(value)
        return catalog.status_json(status, ctx.base, ctx.api) if status else None
    if kind == "priority":
        priority = catalog.priority(value)
        return catalog.priority_json(priority, ctx.base, ctx.api) if priority else None
    if kind == "resolution":
        return catalog.resolution_json(ctx.base, ctx.api)
    if kind == "option":
        option = catalog.option(value)
        return catalog.option_json(option, ctx.base, ctx.api) if option else None
    raise AssertionError(f"no renderer for field kind {kind!r}")


def _reference(raw: Any, keys: tuple[str, ...]) -> str | None:
    if isinstance(raw, Mapping):
        for key in keys:
            if isinstance(raw.get(key), str | int) and not isinstance(raw.get(key), bool):
                return str(raw[key])
    return None


def parse_value(spec: FieldSpec, raw: Any, ctx: RenderContext) -> Any:
    """The stored form of an input value (`fields` of a create or edit); raises `FieldError`."""
    kind = spec.kind
    catalog = ctx.catalog
    if kind == "string":
        if not isinstance(raw, str) or not raw.strip():
            raise FieldError(f"You must specify a {spec.name.lower()} of the issue.")
        if "\n" in raw or "\r" in raw:
            raise FieldError(
                f"The {spec.name.lower()} is invalid because it contains newline characters."
            )
        if len(raw) > 255:
            raise FieldError(f"{spec.name} must be less than 255 characters.")
        return raw
    if kind == "richtext":
        if raw is None:
            return None
        if ctx.api == 3:
            if not is_document(raw):
                raise FieldError(
                    "Operation value must be an Atlassian Document "
                    "(see the Atlassian Document Format)"
                )
            return raw
        if not isinstance(raw, str):
            raise FieldError("Operation value must be a string")
        return wiki_to_adf(raw)
    if kind == "issuetype":
        ref = _reference(raw, ("id", "name"))
        found = catalog.issue_type(ref) if ref else None
        if found is None:
            raise FieldError(
                "The issue type selected is invalid." if ref else "Specify an issue type"
            )
        return found.id
    if kind == "project":
        ref = _reference(raw, ("key", "id"))
        if ref not in (catalog.project_key, catalog.project_id):
            raise FieldError("Specify a valid project ID or key")
        return catalog.project_key
    if kind == "priority":
        ref = _reference(raw, ("id", "name"))
        found_priority = catalog.priority(ref) if ref else None
        if found_priority is None:
            raise FieldError(
                "The priority selected is invalid."
                if ref
                else "Specify the Priority (id or name) in the string format"
            )
        return found_priority.id
    if kind == "user":
        if raw is None:
            return None
        account = _reference(raw, ("accountId",))
        if account is None or account not in ctx.users:
            raise FieldError(f"Specify a valid value for {spec.id}")
        return account
    if kind == "labels":
        if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
            raise FieldError("Specify the labels as a list of strings")
        for label in raw:
            if not label or " " in label:
                raise FieldError(f"The label '{label}' contains spaces which is invalid.")
        return tuple(dict.fromkeys(raw))
    if kind == "date":
        if raw is None:
            return None
        if isinstance(raw, str) and len(raw) == 10:
            try:
                return date.fromisoformat(raw).isoformat()
            except ValueError:
                pass
        raise FieldError(f"Error parsing date string: {raw}")
    if kind == "number":
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise FieldError("Operation value must be a number")
        return raw
    if kind == "option":
        if raw is None:
            return None
        ref = _reference(raw, ("id", "value"))
        option = catalog.option(ref) if ref else None
        if option is None:
            raise FieldError(f"Option value '{ref}' is not valid")
        return option.id
    raise FieldError(
        f"Field '{spec.id}' cannot be set. It is not on the appropriate screen, or unknown."
    )


def _display(spec: FieldSpec, value: Any, ctx: RenderContext) -> tuple[str | None, str | None]:
    """`(from|to, fromString|toString)` of one side of a changelog item."""
    if value is None or value == ():
        return None, None
    kind = spec.kind
    catalog = ctx.catalog
    if kind == "user":
        user = ctx.users.get(value)
        return value, user.display_name if user else value
    if kind == "labels":
        return None, " ".join(value)
    if kind == "richtext":
        return None, adf_to_wiki(value)
    if kind == "status":
        status = catalog.status(value)
        return value, status.name if status else value
    if kind == "priority":
        priority = catalog.priority(value)
        return value, priority.name if priority else value
    if kind == "issuetype":
        issue_type = catalog.issue_type(value)
        return value, issue_type.name if issue_type else value
    if kind == "option":
        option = catalog.option(value)
        return value, option.value if option else value
    if kind == "resolution":
        return value, "Done"
    if kind == "date":
        return value, f"{value} 00:00:00.0"
    if kind == "datetime":
        return format_time(value), format_time(value)
    if kind == "number":
        return None, f"{value:g}" if isinstance(value, float) else str(value)
    return None, str(value)


def change_item(spec: FieldSpec, old: Any, new: Any, ctx: RenderContext) -> ChangeItem | None:
    """The changelog item recording that `spec` went from `old` to `new` (None: not logged)."""
    if spec.kind == "comments":
        return None
    from_, from_string = _display(spec, old, ctx)
    to, to_string = _display(spec, new, ctx)
    return ChangeItem(
        field=spec.name if spec.custom else spec.id,
        fieldtype="custom" if spec.custom else "jira",
        field_id=spec.id,
        from_=from_,
        from_string=from_string,
        to=to,
        to_string=to_string,
    )
