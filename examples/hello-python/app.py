"""The hello plugin: `echo` returns its input, `greet` uses the operator's config.

Build it with `corral build examples/hello-python`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, log, types


class Handler(exports.Handler):
    def invoke(self, command: str, input: str) -> str:
        if command == "echo":
            return input
        if command == "greet":
            args = json.loads(input) or {}
            try:
                greeting = json.loads(config.get("greeting"))
            except Err as error:
                if not isinstance(error.value, types.PluginError_NotFound):
                    raise
                greeting = "Hello"
            name = args.get("name", "world")
            log.log(log.Level.INFO, "greeting", [("name", name)])
            return json.dumps({"message": f"{greeting}, {name}!"})
        if command == "config":
            return config.get_all()
        raise Err(types.PluginError_InvalidInput(f"unknown command {command!r}"))

    def on_event(self, event: exports.handler.Event) -> None:
        log.log(log.Level.INFO, "event", [("type", event.type), ("id", event.id)])
