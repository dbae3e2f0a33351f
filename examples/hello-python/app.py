"""The hello plugin: `echo` returns its input, `greet` uses the operator's config, `repeat` takes
and returns dataclasses.

Build it with `corral build examples/hello-python`. Commands are plain functions taking and
returning JSON-able values; `corral_sdk` turns them into the exported `Handler`. The build
declares each one in the bundle's manifest: its docstring describes it, and the type hints
become the JSON Schemas the host checks calls against.
"""

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from corral_sdk import Plugin, errors
from wit_world.imports import config, log

plugin = Plugin()


class Person(TypedDict, total=False):
    name: str


class Greeting(TypedDict):
    message: str


@plugin.command("echo")
def echo(args: Any) -> Any:
    """Return the input unchanged."""
    return args


@plugin.command("greet")
def greet(args: Person | None) -> Greeting:
    """Greet `name` (default "world") with the operator's greeting (default "Hello")."""
    try:
        greeting = json.loads(config.get("greeting"))
    except errors.Err as error:
        if not errors.is_not_found(error):
            raise
        greeting = "Hello"
    name = (args or {}).get("name", "world")
    log.log(log.Level.INFO, "greeting", [("name", name)])
    return {"message": f"{greeting}, {name}!"}


@dataclass
class Repeat:
    text: str
    times: int = 2


@dataclass
class Echoes:
    texts: list[str]


@plugin.command("repeat")
def repeat(args: Repeat) -> Echoes:
    """Say `text` `times` times (twice by default)."""
    return Echoes([args.text] * args.times)


@plugin.command("config")
def show_config(args) -> dict[str, Any]:
    """The plugin's config, as the operator set it."""
    return json.loads(config.get_all())


@plugin.on("*")
def on_event(event, payload):
    log.log(log.Level.INFO, "event", [("type", event.type), ("id", event.id)])


Handler = plugin.handler()
