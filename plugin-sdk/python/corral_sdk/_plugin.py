"""Command dispatch: JSON in, JSON out, errors as values."""

import dataclasses
import inspect
import json
import traceback
import typing

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log

from . import errors


class Plugin:
    """Collects commands and event handlers and builds the exported `Handler` class."""

    def __init__(self):
        self._commands = {}
        self._events = {}

    def command(self, name, *, input_schema=None, output_schema=None):
        """Register `fn(args) -> JSON-able` as the command `name`.

        `corral build` declares it in the bundle's manifest: the docstring is its description,
        and its input and output schemas are `input_schema` and `output_schema` when given
        (JSON Schema as dict literals), else derived from the type hints of `args` and of the
        return value (str, int, float, bool, None, list, dict, Literal, unions, TypedDicts and
        dataclasses defined in app.py). The host then checks each call's input before it
        reaches `fn`. A dataclass hint on `args` gets an instance built from the input object;
        a dataclass returned is sent as its fields.
        """

        def register(fn):
            self._commands[name] = _with_dataclasses(fn)
            return fn

        return register

    def on(self, event_type):
        """Register `fn(event, payload)` for events of `event_type` ("*" for any)."""

        def register(fn):
            self._events[event_type] = fn
            return fn

        return register

    def handler(self):
        plugin = self

        class Handler(exports.Handler):
            def invoke(self, command: str, input: str) -> str:
                fn = plugin._commands.get(command)
                if fn is None:
                    known = ", ".join(sorted(plugin._commands))
                    raise errors.invalid_input(f"unknown command {command!r} (known: {known})")
                try:
                    args = json.loads(input) if input else None
                except ValueError as exc:
                    raise errors.invalid_input(f"input is not JSON: {exc}") from None
                try:
                    return json.dumps(fn(args))
                except Err:
                    raise
                except Exception as exc:  # a bug in the plugin: an error value, not a trap
                    log.log(log.Level.ERROR, traceback.format_exc(), [])
                    raise errors.internal(f"{command}: {type(exc).__name__}: {exc}") from None

            def on_event(self, event: exports.handler.Event) -> None:
                fn = plugin._events.get(event.type) or plugin._events.get("*")
                if fn is not None:
                    fn(event, json.loads(event.payload) if event.payload else None)

        return Handler


def _with_dataclasses(fn):
    """`fn`, taking its input as the dataclass its first parameter's hint names (if one does)
    and returning a dataclass result as a dict."""
    parameters = list(inspect.signature(fn).parameters)
    takes = []  # resolved at the first call: hints may name classes defined after `fn`

    def call(args):
        if not takes:
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # a hint that does not resolve is only documentation
                hints = {}
            hint = hints.get(parameters[0]) if parameters else None
            takes.append(hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None)
        if takes[0] is not None:
            if not isinstance(args, dict):
                raise errors.invalid_input(f"input must be an object, got {type(args).__name__}")
            try:
                args = takes[0](**args)
            except TypeError as exc:
                raise errors.invalid_input(f"input: {exc}") from None
        result = fn(args)
        if dataclasses.is_dataclass(result) and not isinstance(result, type):
            return dataclasses.asdict(result)
        return result

    return call
