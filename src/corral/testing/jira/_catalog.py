"""The instance's metadata: project, issue types, priorities, statuses, resolutions, options.

Ids follow a fresh Jira Cloud site (project 10000, issue types 1xxxx, custom fields 100xx), so
clients meet instance-specific ids as they would on a real site. Entities render with the
request's base URL in `self`, as Jira does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._workflow import Status, Workflow

__all__ = ["Catalog", "IssueType", "Option", "Priority"]


@dataclass(frozen=True)
class IssueType:
    id: str
    name: str
    description: str
    hierarchy_level: int = 0

    @property
    def subtask(self) -> bool:
        return self.hierarchy_level < 0


@dataclass(frozen=True)
class Priority:
    id: str
    name: str
    color: str


@dataclass(frozen=True)
class Option:
    """A value of a select custom field."""

    id: str
    value: str


ISSUE_TYPES = (
    IssueType("10001", "Task", "A small, distinct piece of work."),
    IssueType("10002", "Bug", "A problem or error."),
    IssueType("10003", "Story", "A user-facing feature, told from the user's point of view."),
    IssueType("10004", "Epic", "A collection of related bugs, stories, and tasks.", 1),
    IssueType("10005", "Subtask", "A small piece of work that's part of a larger task.", -1),
)
PRIORITIES = (
    Priority("1", "Highest", "#d04437"),
    Priority("2", "High", "#f15C75"),
    Priority("3", "Medium", "#f79232"),
    Priority("4", "Low", "#707070"),
    Priority("5", "Lowest", "#999999"),
)
DEFAULT_PRIORITY = "3"
TEAM_OPTIONS = (
    Option("10100", "Platform"),
    Option("10101", "Payments"),
    Option("10102", "Mobile"),
    Option("10103", "Data"),
)
RESOLUTION_DONE = ("10000", "Done", "Work has been completed on this issue.")

_CATEGORIES = {
    # Jira's status category ids, keys and colours.
    "new": (2, "new", "blue-gray", "To Do"),
    "indeterminate": (4, "indeterminate", "yellow", "In Progress"),
    "done": (3, "done", "green", "Done"),
}


def _named(items: tuple[Any, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        found[item.id] = item
        found[item.name.lower()] = item
    return found


class Catalog:
    """What exists on the emulated site besides issues."""

    project_id = "10000"
    issue_types = ISSUE_TYPES
    priorities = PRIORITIES
    team_options = TEAM_OPTIONS

    def __init__(self, *, project_key: str, workflow: Workflow):
        if not (project_key.isascii() and project_key.isalnum() and project_key[:1].isalpha()):
            raise ValueError(
                f"project key {project_key!r} must be letters and digits, starting with a letter"
            )
        self.project_key = project_key.upper()
        self.workflow = workflow
        self._issue_types = _named(ISSUE_TYPES)
        self._priorities = _named(PRIORITIES)
        self._options = {o.id: o for o in TEAM_OPTIONS} | {o.value.lower(): o for o in TEAM_OPTIONS}

    def issue_type(self, id_or_name: str) -> IssueType | None:
        found: IssueType | None = self._issue_types.get(id_or_name.lower())
        return found

    def priority(self, id_or_name: str) -> Priority | None:
        found: Priority | None = self._priorities.get(id_or_name.lower())
        return found

    def option(self, id_or_value: str) -> Option | None:
        return self._options.get(id_or_value.lower())

    def status(self, id_or_name: str) -> Status | None:
        return self.workflow.status(id_or_name)

    # -- JSON ---------------------------------------------------------------------------

    @staticmethod
    def _api(base: str, api: int) -> str:
        return f"{base}/rest/api/{api}"

    def project_json(self, base: str, api: int, *, full: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "self": f"{self._api(base, api)}/project/{self.project_id}",
            "id": self.project_id,
            "key": self.project_key,
            "name": f"{self.project_key.capitalize()} project",
            "projectTypeKey": "software",
            "simplified": False,
            "avatarUrls": {
                size: f"{base}/secure/projectavatar?size={name}&pid={self.project_id}"
                for size, name in (
                    ("48x48", "large"),
                    ("24x24", "small"),
                    ("16x16", "xsmall"),
                    ("32x32", "medium"),
                )
            },
        }
        if full:
            body |= {
                "description": "Issues served by the Corral Jira emulator.",
                "assigneeType": "UNASSIGNED",
                "style": "classic",
                "isPrivate": False,
                "issueTypes": [self.issue_type_json(t, base, api) for t in ISSUE_TYPES],
                "versions": [],
                "components": [],
                "properties": {},
            }
        return body

    def issue_type_json(self, issue_type: IssueType, base: str, api: int) -> dict[str, Any]:
        return {
            "self": f"{self._api(base, api)}/issuetype/{issue_type.id}",
            "id": issue_type.id,
            "description": issue_type.description,
            "iconUrl": f"{base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/"
            f"{issue_type.id}?size=medium",
            "name": issue_type.name,
            "subtask": issue_type.subtask,
            "avatarId": int(issue_type.id),
            "hierarchyLevel": issue_type.hierarchy_level,
        }

    def priority_json(self, priority: Priority, base: str, api: int) -> dict[str, Any]:
        return {
            "self": f"{self._api(base, api)}/priority/{priority.id}",
            "statusColor": priority.color,
            "description": f"{priority.name} priority.",
            "iconUrl": f"{base}/images/icons/priorities/{priority.name.lower()}.svg",
            "name": priority.name,
            "id": priority.id,
            "isDefault": priority.id == DEFAULT_PRIORITY,
        }

    def status_json(self, status: Status, base: str, api: int) -> dict[str, Any]:
        cat_id, key, colour, name = _CATEGORIES[status.category]
        return {
            "self": f"{self._api(base, api)}/status/{status.id}",
            "description": "",
            "iconUrl": f"{base}/images/icons/statuses/generic.png",
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": f"{self._api(base, api)}/statuscategory/{cat_id}",
                "id": cat_id,
                "key": key,
                "colorName": colour,
                "name": name,
            },
        }

    def resolution_json(self, base: str, api: int) -> dict[str, Any]:
        rid, name, description = RESOLUTION_DONE
        return {
            "self": f"{self._api(base, api)}/resolution/{rid}",
            "id": rid,
            "description": description,
            "name": name,
        }

    def option_json(self, option: Option, base: str, api: int) -> dict[str, Any]:
        return {
            "self": f"{self._api(base, api)}/customFieldOption/{option.id}",
            "value": option.value,
            "id": option.id,
        }
