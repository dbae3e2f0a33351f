"""Field mapping: which task field mirrors which Jira field, in which direction, and how each
value converts between the two sides.

Values are compared in their *local* form (what the task holds), so the three-way merge never
sees Jira's shapes. Labels starting with `MARKER_PREFIX` are the sync's own create markers:
never shown locally, always kept remotely.
"""

import adf

MARKER_PREFIX = "corral-"
DIRECTIONS = ("pull", "push", "both")
STRATEGIES = ("remote-wins", "local-wins", "newest-wins", "manual")
DEFAULT_FIELDS = {
    "title": "summary",
    "description": "description",
    "status": "status",
    "priority": "priority",
    "assignee": "assignee",
    "labels": "labels",
    "due_date": "duedate",
}
DEFAULT_STATUS_VALUES = {"To Do": "todo", "In Progress": "in_progress", "Done": "done"}
DEFAULT_PRIORITY_VALUES = {
    "Highest": "critical",
    "High": "high",
    "Medium": "medium",
    "Low": "low",
    "Lowest": "lowest",
}


def _slug(name):
    return "_".join(name.lower().split())


class ValueMap:
    """A Jira name ⇄ local value table; unknown names become slugs and go back by slug."""

    def __init__(self, table):
        self.to_local_table = dict(table)
        self.to_remote_table = {local: remote for remote, local in table.items()}

    def to_local(self, name):
        value = self.to_local_table.get(name)
        return _slug(name) if value is None else value

    def to_remote(self, value, known_names=()):
        if value in self.to_remote_table:
            return self.to_remote_table[value]
        for name in known_names:
            if _slug(name) == value:
                return name
        return value


class Field:
    """One mapped field: `local` (task field or ``custom_fields.<name>``) ← `jira` (field id)."""

    def __init__(self, local, jira, direction, strategy, values=None, user_map=None, api_version=3):
        self.local = local
        self.jira = jira
        self.direction = direction
        self.strategy = strategy
        self.values = values
        self.user_map = user_map or {}
        self.accounts = {account: name for name, account in self.user_map.items()}
        self.api_version = api_version
        self.pulls = direction in ("pull", "both")
        self.pushes = direction in ("push", "both")
        custom = local.startswith("custom_fields.")
        self._custom_key = local[len("custom_fields.") :] if custom else None

    def read_local(self, task):
        """The field's value in a task's JSON object, normalized."""
        if self._custom_key is not None:
            return (task.get("custom_fields") or {}).get(self._custom_key)
        value = task.get(self.local)
        if self.local == "labels":
            return sorted(v for v in value or () if not v.startswith(MARKER_PREFIX))
        if self.local == "description":
            return value or ""
        return value

    def write_local(self, task, value):
        """Set the value in a task's JSON object (in place)."""
        if self._custom_key is not None:
            task.setdefault("custom_fields", {})[self._custom_key] = value
        else:
            task[self.local] = value

    def to_local(self, raw):
        """A Jira field value in the local form."""
        jira = self.jira
        if jira == "description":
            return (adf.to_text(raw) if self.api_version == 3 else raw) or ""
        if jira == "summary":
            return raw or ""
        if jira in ("status", "priority"):
            name = raw.get("name") if isinstance(raw, dict) else raw
            return None if name is None else self.values.to_local(name)
        if jira == "assignee":
            if not raw:
                return None
            account = raw.get("accountId") or raw.get("name")
            return self.accounts.get(account, account)
        if jira == "labels":
            return sorted(v for v in raw or () if not v.startswith(MARKER_PREFIX))
        if isinstance(raw, dict) and "value" in raw:
            return raw["value"]
        return raw

    def to_remote(self, value, current_raw=None):
        """The Jira field value for a local value (`current_raw`: the issue's value now)."""
        jira = self.jira
        if jira == "description":
            return adf.to_adf(value) if self.api_version == 3 else value
        if jira == "priority":
            return {"name": self.values.to_remote(value)}
        if jira == "assignee":
            if value is None:
                return None
            return {"accountId": self.user_map.get(value, value)}
        if jira == "labels":
            markers = [v for v in current_raw or () if v.startswith(MARKER_PREFIX)]
            return sorted(value or ()) + markers
        if isinstance(current_raw, dict) and "value" in current_raw and value is not None:
            return {"value": value}
        return value


class FieldMap:
    """The mapped fields of a sync, in a fixed order."""

    def __init__(self, fields):
        self.fields = fields
        self.by_local = {f.local: f for f in fields}

    def jira_ids(self):
        return sorted({f.jira for f in self.fields} | {"updated", "labels"})

    def local_values(self, task):
        return {f.local: f.read_local(task) for f in self.fields}

    def remote_values(self, issue):
        raw = issue.get("fields") or {}
        return {f.local: f.to_local(raw.get(f.jira)) for f in self.fields}


def build(settings, custom_ids):
    """The `FieldMap` for validated settings; `custom_ids` resolves custom field names to ids."""
    mapping = {local: {"jira": jira} for local, jira in DEFAULT_FIELDS.items()}
    for local, entry in (settings.get("field_mapping") or {}).items():
        if entry is None or entry is False:
            mapping.pop(local, None)
            continue
        if isinstance(entry, str):
            entry = {"jira": entry}
        mapping[local] = {**mapping.get(local, {}), **entry}
    user_map = settings.get("user_map") or {}
    fields = []
    for local, entry in mapping.items():
        jira = entry["jira"]
        if local.startswith("custom_fields.") or jira not in DEFAULT_FIELDS.values():
            jira = custom_ids.get(jira, jira)
        values = None
        if entry["jira"] == "status":
            values = ValueMap({**DEFAULT_STATUS_VALUES, **entry.get("values", {})})
        elif entry["jira"] == "priority":
            values = ValueMap({**DEFAULT_PRIORITY_VALUES, **entry.get("values", {})})
        fields.append(
            Field(
                local,
                jira,
                entry.get("direction", settings["direction"]),
                entry.get("conflict_strategy", settings["conflict_strategy"]),
                values,
                user_map,
                settings["api_version"],
            )
        )
    return FieldMap(fields)


def custom_field_names(settings):
    """Jira names (not ids) the mapping uses, which `GET /field` must resolve."""
    names = []
    for _local, entry in (settings.get("field_mapping") or {}).items():
        jira = entry if isinstance(entry, str) else (entry or {}).get("jira") if entry else None
        if jira and jira not in DEFAULT_FIELDS.values() and not jira.startswith("customfield_"):
            names.append(jira)
    return names
