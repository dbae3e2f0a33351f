"""Misbehaviour on demand, for the runtime's limit tests."""

import json
import sys
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

_hoard = []


def _loop(args):
    while True:
        pass


def _spin(args):
    # Legitimate busy work for a given wall time (no host calls, so only wasm runs).
    end = time.monotonic() + float(args.get("seconds", 1))
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def _count(args):
    total = 0
    for i in range(int(args.get("n", 1000))):
        total += i
    return total


def _grow(args):
    chunk = int(args.get("chunk", 1 << 20))
    while True:
        _hoard.append(bytearray(chunk))


def _recurse(args):
    sys.setrecursionlimit(10_000_000)

    class Deep:
        def __getitem__(self, n):
            return self[n + 1]

    return Deep()[0]


def _spew(args):
    line = "x" * 1000
    for _ in range(int(args.get("lines", 10_000))):
        print(line)
    return "spewed"


def _big(args):
    return "y" * int(args.get("bytes", 1 << 20))


def _crash(args):
    raise RuntimeError("an uncaught exception in the guest")


class _RawJSON(str):
    """A result returned as this JSON text, not encoded again."""


def _nested(args):
    depth = int(args.get("depth", 200_000))
    return _RawJSON("[" * depth + "]" * depth)


def _huge_int(args):
    return _RawJSON("9" * int(args.get("digits", 10_000)))


def _forge(args):
    """Output that tries to pass for host log lines."""
    print("ok\nCRITICAL corral.host: forged line\r\x1b[2Kforged too", flush=True)
    return "forged"


def _state(args):
    _hoard.append(1)
    return len(_hoard)


COMMANDS = {
    "loop": _loop,
    "spin": _spin,
    "count": _count,
    "grow": _grow,
    "recurse": _recurse,
    "spew": _spew,
    "big": _big,
    "crash": _crash,
    "state": _state,
    "nested": _nested,
    "huge-int": _huge_int,
    "forge": _forge,
}


class Handler(exports.Handler):
    def invoke(self, command: str, input: str) -> str:
        args = json.loads(input) or {}
        if command not in COMMANDS:
            raise Err(types.PluginError_InvalidInput(f"unknown command {command!r}"))
        result = COMMANDS[command](args)
        return result if isinstance(result, _RawJSON) else json.dumps(result)

    def on_event(self, event: exports.handler.Event) -> None:
        if event.type == "loop":
            _loop({})
