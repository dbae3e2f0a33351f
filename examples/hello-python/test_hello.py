"""The hello plugin, tested as its author would: `corral_plugin` builds it from this directory
(when the sources changed) and loads it into a real host with the config each test chooses."""

from pathlib import Path

import pytest

from corral import PluginError
from corral.testing import LogLine

HERE = Path(__file__).resolve().parent


def test_greet_uses_the_configured_greeting_and_logs_the_name(corral_plugin):
    plugin = corral_plugin(HERE, config={"greeting": "Howdy"})
    assert plugin.call("greet", {"name": "Ada"}) == {"message": "Howdy, Ada!"}
    assert plugin.logs == [LogLine("info", "greeting", {"name": "Ada"})]


def test_greet_says_hello_without_config(corral_plugin):
    plugin = corral_plugin(HERE)
    assert plugin.call("greet") == {"message": "Hello, world!"}
    assert plugin.call("config") == {}


def test_events_are_logged_with_their_type_and_id(corral_plugin):
    plugin = corral_plugin(HERE)
    plugin.send_event("issue.updated", {"key": "OPS-1"}, id="e1")
    assert plugin.logs == [LogLine("info", "event", {"type": "issue.updated", "id": "e1"})]


def test_an_unknown_command_is_invalid_input(corral_plugin):
    plugin = corral_plugin(HERE)
    with pytest.raises(PluginError) as failure:
        plugin.call("shout")
    assert failure.value.kind == "invalid-input"
