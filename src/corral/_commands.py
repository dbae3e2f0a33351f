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

from ._errors import InvalidCommandInput, ProtocolError
from ._json_schema import first_violation, offline_validator
from .manifest import CommandSpec

__all__ = ["CommandValidators"]


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
        validator = self._inputs.get(command)
        problem = None if validator is None else first_violation(validator, value, "input")
        if problem is not None:
            raise InvalidCommandInput(self._plugin, f"{command}: {problem}")

    def check_output(self, command: str, value: Any) -> None:
        """Raise `ProtocolError` if `value` breaks `command`'s output_schema (if any)."""
        validator = self._outputs.get(command)
        problem = None if validator is None else first_violation(validator, value, "output")
        if problem is not None:
            raise ProtocolError(f"plugin {self._plugin!r}: {command}: {problem}")
