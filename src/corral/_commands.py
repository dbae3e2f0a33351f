"""A plugin's declared commands, compiled into validators once per load.

The host checks a call's input against the command's `input_schema` before entering the
plugin, so a malformed call never reaches the plugin's code, and the caller gets the field that
is wrong rather than whatever the plugin makes of it. Output is checked only
when asked (`check_output`): by then the plugin has run and whatever it wrote is written, so
failing the call in production would hide a result without undoing anything; authors and tests
ask for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from ._errors import InvalidCommandInput, ProtocolError
from ._json_schema import offline_validator
from ._validation import field_path, one_line
from .manifest import CommandSpec

__all__ = ["CommandValidators"]

_MAX_MESSAGE = 300
"""jsonschema quotes the offending value whole; a huge one must not become a huge line."""


class CommandValidators:
    """Input and output validators for each declared command of one plugin."""

    def __init__(self, plugin: str, commands: Mapping[str, CommandSpec]) -> None:
        self._plugin = plugin
        self._inputs = {
            name: offline_validator(spec.input_schema)
            for name, spec in commands.items()
            if spec.input_schema
        }
        self._outputs = {
            name: offline_validator(spec.output_schema)
            for name, spec in commands.items()
            if spec.output_schema
        }

    def check_input(self, command: str, value: Any) -> None:
        """Raise `InvalidCommandInput` if `value` breaks `command`'s input_schema (if any)."""
        problem = _problem(self._inputs.get(command), value, "input")
        if problem is not None:
            raise InvalidCommandInput(self._plugin, f"{command}: {problem}")

    def check_output(self, command: str, value: Any) -> None:
        """Raise `ProtocolError` if `value` breaks `command`'s output_schema (if any)."""
        problem = _problem(self._outputs.get(command), value, "output")
        if problem is not None:
            raise ProtocolError(f"plugin {self._plugin!r}: {command}: {problem}")


def _problem(validator: Validator | None, value: Any, root: str) -> str | None:
    """``root.field.path: message`` for the most relevant error, or None if `value` is valid."""
    if validator is None:
        return None
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    location: tuple[int | str, ...] = (root, *error.absolute_path)
    missing = _missing_property(error)
    if missing is not None:
        location += (missing,)
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return one_line(f"{field_path(location)}: {message}")


def _missing_property(error: jsonschema.ValidationError) -> str | None:
    """The property a ``required`` error is about, so the path names the field itself."""
    required = error.validator_value
    if error.validator != "required" or not isinstance(required, list):
        return None
    # One error per missing property; its message quotes the name.
    return next((name for name in required if repr(name) in error.message), None)
