"""What a plugin returns or prints cannot break the caller: results the host cannot decode and
inputs with no JSON form are CorralErrors; log lines and guest output cannot forge host lines."""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest

from corral import ConfigError, PluginError, PluginHost

HostFactory = Callable[..., PluginHost]


@pytest.mark.parametrize(
    ("command", "args", "reason"),
    [
        ("nested", {"depth": 200_000}, "nested deeper"),
        ("huge-int", {"digits": 10_000}, "cannot decode"),
    ],
)
def test_a_result_the_host_cannot_decode_is_a_plugin_error(
    make_host: HostFactory, command: str, args: dict[str, int], reason: str
) -> None:
    host = make_host("misbehave")
    with pytest.raises(PluginError) as info:
        host.call("misbehave", command, args)
    assert info.value.kind == "internal"
    assert reason in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, '["n"] is nan, which JSON cannot hold'),
        (math.inf, '["n"] is inf, which JSON cannot hold'),
        ({1, 2}, '["n"] is of type set (use a list)'),
        (
            [1, {"at": datetime.date(2026, 1, 2)}],
            '["n"][1]["at"] is of type date (pass .isoformat())',
        ),
        ({(1, 2): 3}, '["n"] has a key of type tuple; keys must be strings'),
        (object(), '["n"] is of type object'),
        ("deep", None),
    ],
    ids=["nan", "inf", "set", "date", "key", "obj", "deep"],
)
def test_an_input_with_no_json_form_is_refused_before_the_call(
    make_host: HostFactory, value: Any, problem: str | None
) -> None:
    host = make_host("misbehave")
    if value == "deep":
        value = []
        for _ in range(100_000):
            value = [value]
    with pytest.raises(ConfigError) as info:
        host.call("misbehave", "count", {"n": value})
    # The message names the value's place in the input (and what to pass instead).
    if problem is None:
        assert str(info.value) == "the input of misbehave 'count' is nested too deeply"
    else:
        assert str(info.value) == f"the input of misbehave 'count' is not JSON-able: input{problem}"
    with pytest.raises(ConfigError) as info:
        host.send_event("misbehave", "tick", {"n": value})
    if problem is not None:
        assert str(info.value).endswith(f"is not JSON-able: payload{problem}")
    assert host.call("misbehave", "count", {"n": 3}) == 3


def _records(caplog: pytest.LogCaptureFixture, plugin: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"corral.plugin.{plugin}"]


def test_guest_output_cannot_forge_log_lines(
    make_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    host = make_host("misbehave")
    with caplog.at_level(logging.INFO, logger="corral.plugin.misbehave"):
        assert host.call("misbehave", "forge") == "forged"
    lines = _records(caplog, "misbehave")
    # Each line of output is one record under the plugin's logger, marked as its output.
    assert "[stdout] ok" in lines
    forged = next(line for line in lines if "forged line" in line)
    assert forged == "[stdout] CRITICAL corral.host: forged line\\r\\x1b[2Kforged too"


def test_log_messages_and_fields_cannot_forge_log_lines(
    make_host: HostFactory, caplog: pytest.LogCaptureFixture
) -> None:
    grants = ["network.http.outbound", "config.read", "task.read_write", "kv"]
    host = make_host("hostapi", plugins={"hostapi": {"grant": grants}})
    message = "done\n2026-01-01 ERROR corral.host: forged\x1b[1A\u2028"
    fields = [["key\nforged", "value\r\nforged"]]
    with caplog.at_level(logging.INFO, logger="corral.plugin.hostapi"):
        host.call("hostapi", "log", {"message": message, "fields": fields})
    (line,) = _records(caplog, "hostapi")
    assert line == (
        "done\\n2026-01-01 ERROR corral.host: forged\\x1b[1A\\u2028 key\\nforged=value\\r\\nforged"
    )
    assert not any(c in line for c in "\n\r\x1b\u2028")
