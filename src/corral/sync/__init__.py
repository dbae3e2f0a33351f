"""Two-way sync through plugins that follow the sync protocol (plugin-sdk/sync-protocol.md).

`SyncConnector` drives one such plugin: `sync` calls it slice by slice until the run is done,
reporting each slice's `SyncProgress`, and returns a `SyncReport`; `conflicts` and `resolve`
handle what needs a person. `PluginHost.sync`, `.conflicts` and `.resolve` are the usual way in.
"""

from ._connector import ProgressCallback, SyncConnector, slice_budget_ms
from ._model import (
    Conflict,
    Counts,
    ItemError,
    Resolution,
    SyncProgress,
    SyncReport,
    SyncStatus,
)

__all__ = [
    "Conflict",
    "Counts",
    "ItemError",
    "ProgressCallback",
    "Resolution",
    "SyncConnector",
    "SyncProgress",
    "SyncReport",
    "SyncStatus",
    "slice_budget_ms",
]
