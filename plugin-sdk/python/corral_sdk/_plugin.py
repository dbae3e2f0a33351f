"""Command dispatch: JSON in, JSON out, errors as values."""

import json
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log

from . import errors


class Plugin:
    """Collects commands and event handlers and builds the exported `Handler` class."""

    def __init__(self):
        self._commands = {}
        self._events = {}

    def command(self, name):
        """Register `fn(args) -> JSON-able` as the command `name`."""

        def register(fn):
            self._commands[name] = fn
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
