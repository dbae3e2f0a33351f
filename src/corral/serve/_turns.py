"""Taking turns per plugin: a scheduled job and an event delivery of one plugin do not run at
once (a sync job and a webhook for the same issue would race on the plugin's state), unless the
plugin's manifest says ``runtime.concurrent_events: true``."""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["PluginTurns"]


class PluginTurns:
    """One lock per plugin, shared by the scheduler and the event delivery."""

    def __init__(self) -> None:
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def of(self, plugin: str) -> threading.Lock:
        with self._guard:
            return self._locks[plugin]
