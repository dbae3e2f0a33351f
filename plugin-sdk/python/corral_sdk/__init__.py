"""Helpers for Corral plugins written in Python (runs inside the component, not on the host).

`corral build` puts this package on the plugin's path, so a plugin can write:

    from corral_sdk import Plugin, errors
    from corral_sdk import tasks

    plugin = Plugin()

    @plugin.command("count-open")
    def count_open(args: dict) -> int:
        return sum(1 for _ in tasks.iter_query(status="todo"))

    Handler = plugin.handler()
"""

from . import errors
from ._plugin import Plugin

__all__ = ["Plugin", "errors"]
