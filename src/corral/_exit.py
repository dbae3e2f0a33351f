"""The command line's exit codes, and the error for a command line that is wrong."""

from __future__ import annotations

from ._errors import CorralError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TRAP",
    "EXIT_USAGE",
    "UsageError",
]

EXIT_OK = 0
EXIT_FAILED = 1
"""A plugin or verification error; for `corral sync`, a run with item errors or open conflicts."""
EXIT_USAGE = 2
"""The command line or the configuration is wrong."""
EXIT_TRAP = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a process ended by SIGINT."""
EXIT_BROKEN_PIPE = 141
"""stdout's reader went away (``| head``), as shells report a process ended by SIGPIPE. Python
ignores SIGPIPE (a closed socket must raise, not end the process), so the CLI exits quietly
with this code instead."""


class UsageError(CorralError):
    """The command line is wrong (exit code 2)."""
