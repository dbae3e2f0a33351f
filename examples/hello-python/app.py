"""The hello plugin: `echo` returns its input, `greet` uses the operator's config.

Build it with `corral build examples/hello-python`. Commands are plain functions taking and
returning JSON-able values; `corral_sdk` turns them into the exported `Handler`.
"""

import json

from corral_sdk import Plugin, errors
from wit_world.imports import config, log

plugin = Plugin()


@plugin.command("echo")
def echo(args):
    return args


@plugin.command("greet")
def greet(args):
    try:
        greeting = json.loads(config.get("greeting"))
    except errors.Err as error:
        if not errors.is_not_found(error):
            raise
        greeting = "Hello"
    name = (args or {}).get("name", "world")
    log.log(log.Level.INFO, "greeting", [("name", name)])
    return {"message": f"{greeting}, {name}!"}


@plugin.command("config")
def show_config(args):
    return json.loads(config.get_all())


@plugin.on("*")
def on_event(event, payload):
    log.log(log.Level.INFO, "event", [("type", event.type), ("id", event.id)])


Handler = plugin.handler()
