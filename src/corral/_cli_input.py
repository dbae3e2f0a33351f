"""What the command line reads: JSON given as an option's value."""

from __future__ import annotations

import json
from typing import Any

from ._exit import UsageError

__all__ = ["json_option"]


def json_option(flag: str, text: str) -> Any:
    """The JSON value of a command-line option, refused (UsageError) unless it is strict JSON."""

    def refuse_constant(name: str) -> Any:
        # Python's json reads NaN and Infinity, which are not JSON: a plugin's parser would
        # refuse them (or read something else) after the host had accepted them.
        raise UsageError(f"{flag} is not JSON: {name} is not a JSON value")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not JSON: {exc.msg} at position {exc.pos}") from None
