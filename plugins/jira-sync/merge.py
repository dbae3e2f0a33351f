"""Three-way merge, field by field, of a task and its Jira issue against their last agreed base."""

from datetime import datetime

MISSING = object()
"""A field with no base yet (newly mapped): treated as changed on both sides."""


class Outcome:
    """What one reconciliation decided."""

    def __init__(self):
        self.to_local = {}
        self.to_remote = {}
        self.base = {}
        self.conflicts = []  # (field, base, local, remote)

    @property
    def changed(self):
        return bool(self.to_local or self.to_remote)


def parse_time(text):
    """Epoch seconds of a Jira (``+0000``) or ISO (``Z``) timestamp; 0 when absent or odd."""
    if not text:
        return 0.0
    text = text.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def _winner(strategy, local_at, remote_at):
    if strategy == "local-wins":
        return "local"
    if strategy == "remote-wins":
        return "remote"
    if strategy == "newest-wins":
        return "local" if parse_time(local_at) > parse_time(remote_at) else "remote"
    return None  # manual


def reconcile(fieldmap, local, remote, base, *, local_at="", remote_at="", held=()):
    """Merge `local` and `remote` values (local form, by task field) against `base`.

    Fields in `held` have an open conflict: they stay as they are on both sides, and their base
    is kept until the conflict is resolved.
    """
    outcome = Outcome()
    for field in fieldmap.fields:
        name = field.local
        mine, theirs, agreed = local[name], remote[name], base.get(name, MISSING)
        if name in held:
            if agreed is not MISSING:
                outcome.base[name] = agreed
            continue
        if mine == theirs:
            outcome.base[name] = mine
            continue
        local_changed, remote_changed = mine != agreed, theirs != agreed
        if not field.pushes:
            local_changed = False
        if not field.pulls:
            remote_changed = False
        if not (local_changed or remote_changed):
            # A one-directional field whose other side moved: its base follows its source.
            outcome.base[name] = theirs if field.pulls else mine
            continue
        if local_changed and remote_changed:
            winner = _winner(field.strategy, local_at, remote_at)
            if winner is None:
                shown = None if agreed is MISSING else agreed
                outcome.conflicts.append((name, shown, mine, theirs))
                if agreed is not MISSING:
                    outcome.base[name] = agreed
                continue
        else:
            winner = "local" if local_changed else "remote"
        if winner == "remote":
            outcome.to_local[name] = theirs
            outcome.base[name] = theirs
        else:
            outcome.to_remote[name] = mine
            outcome.base[name] = mine
    return outcome
