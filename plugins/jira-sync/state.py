"""The sync's persistent state in `kv` (JSON values): the run in progress, cursors, conflicts,
the sync log, create intents and per-issue leases. This module holds what is more than one
`kv` call: the log, the conflict table and leases."""

import time
import uuid

from componentize_py_types import Err
from corral_sdk import kv

LOG_LENGTH = 20
LEASE_SECONDS = 30.0


def now_ms():
    return int(time.time() * 1000)


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the sync log ---------------------------------------------------------------------------------


def append_report(report):
    """Keep the newest `LOG_LENGTH` run reports, newest first."""
    kv.set("log", [report, *kv.get("log", [])[: LOG_LENGTH - 1]])


# --- conflicts ------------------------------------------------------------------------------------


def conflicts():
    return kv.get("conflicts", {})


def record_conflicts(records):
    """Add conflicts, one per (task, field): a newer one replaces the older."""
    if not records:
        return
    table = conflicts()
    # By (task, field), so a page of conflicts is not a scan of the table per record.
    ids = {(old["task_id"], old["field"]): cid for cid, old in table.items()}
    for record in records:
        pair = (record["task_id"], record["field"])
        replaced = ids.pop(pair, None)
        if replaced is not None:
            del table[replaced]
        ids[pair] = "c-" + uuid.uuid4().hex[:12]
        table[ids[pair]] = record
    kv.set("conflicts", table)


# --- per-issue leases -----------------------------------------------------------------------------


class Busy(Exception):
    """Another call (a webhook, or a sync in another instance) holds the issue."""


def leased(issue_id):
    """Whether someone holds a live lease on the issue."""
    held = kv.get(f"lease/{issue_id}")
    return held is not None and held["until"] > time.time()


class Lease:
    """An exclusive hold on one issue, taken with compare-and-set, expiring if its holder dies."""

    def __init__(self, issue_id):
        self.key = f"lease/{issue_id}"
        self.token = None

    def __enter__(self):
        mine = {"id": uuid.uuid4().hex, "until": time.time() + LEASE_SECONDS}
        current = kv.get(self.key)
        if current is not None and current["until"] > time.time():
            raise Busy(self.key)
        if not kv.compare_and_set(self.key, current, mine):
            raise Busy(self.key)
        self.token = mine
        return self

    def __exit__(self, *exc):
        try:
            if kv.get(self.key) == self.token:
                kv.delete(self.key)
        except Err:
            pass
