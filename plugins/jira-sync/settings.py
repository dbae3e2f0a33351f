"""The operator's config (already checked against the manifest's `config_schema` by the host),
with defaults filled in and the checks a schema cannot express."""

import json

import fields
from corral_sdk import errors
from wit_world.imports import config

DEFAULTS = {
    "jql": "",
    "api_version": 3,
    "field_mapping": {},
    "direction": "both",
    "conflict_strategy": "manual",
    "create_remote": False,
    "delete_remote": False,
    "page_size": 100,
    "user_map": {},
    "search_lag_seconds": 60,
}
TASK_FIELDS = ("title", "description", "status", "priority", "assignee", "labels", "due_date")


def load():
    settings = {**DEFAULTS, **json.loads(config.get_all())}
    for name in ("base_url", "project_key"):
        if not settings.get(name):
            raise errors.invalid_input(f"config.{name}: required")
    for local, entry in settings["field_mapping"].items():
        where = f"config.field_mapping.{local}"
        if local not in TASK_FIELDS and not local.startswith("custom_fields."):
            raise errors.invalid_input(
                f"{where}: not a task field (one of {', '.join(TASK_FIELDS)} or custom_fields.NAME)"
            )
        if local.startswith("custom_fields.") and not isinstance(entry, (str, dict)):
            raise errors.invalid_input(f"{where}: give the Jira field (id or name)")
        if isinstance(entry, dict):
            if local.startswith("custom_fields.") and not entry.get("jira"):
                raise errors.invalid_input(f"{where}.jira: required for a custom field")
            for key, allowed in (
                ("direction", fields.DIRECTIONS),
                ("conflict_strategy", fields.STRATEGIES),
            ):
                if key in entry and entry[key] not in allowed:
                    raise errors.invalid_input(f"{where}.{key}: one of {', '.join(allowed)}")
    return settings
