"""Checking a compiled component against the ``corral:plugin`` world, before any call.

A component may come from any toolchain, so nothing about it is assumed: it must export
``corral:plugin/handler`` in the version this host calls or an earlier patch of it, with `invoke`
and `on-event` of the right types (compared structurally: record fields and variant cases by
name and type, parameters by position), and it may import only the ``corral:plugin``
interfaces (of such a version) and the WASI 0.2 interfaces the host links. The first mismatch
is one `BundleError` line naming the export, the function and both types, or the import and
its version.
"""

from __future__ import annotations

import re

from wasmtime import Engine
from wasmtime.component import (
    BorrowType,
    ComponentInstanceType,
    ComponentType,
    EnumType,
    FlagsType,
    FuncType,
    FutureType,
    ListType,
    OptionType,
    OwnType,
    RecordType,
    ResultType,
    StreamType,
    TupleType,
    ValType,
    VariantType,
)

from ._errors import BundleError
from .capabilities import CAPABILITIES, WIT_PACKAGE, WIT_VERSION
from .runtime import HANDLER

__all__ = ["WASI_INTERFACES", "check_world", "describe_type"]

WASI_INTERFACES = frozenset(
    {
        "wasi:cli/environment", "wasi:cli/exit", "wasi:cli/stdin", "wasi:cli/stdout",
        "wasi:cli/stderr", "wasi:cli/terminal-input", "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin", "wasi:cli/terminal-stdout", "wasi:cli/terminal-stderr",
        "wasi:clocks/monotonic-clock", "wasi:clocks/wall-clock",
        "wasi:filesystem/preopens", "wasi:filesystem/types",
        "wasi:io/error", "wasi:io/poll", "wasi:io/streams",
        "wasi:random/insecure", "wasi:random/insecure-seed", "wasi:random/random",
        "wasi:sockets/instance-network", "wasi:sockets/ip-name-lookup", "wasi:sockets/network",
        "wasi:sockets/tcp", "wasi:sockets/tcp-create-socket", "wasi:sockets/udp",
        "wasi:sockets/udp-create-socket",
    }
)  # fmt: skip
"""The WASI interfaces the host links (Wasmtime's WASI 0.2 set; never wasi:http)."""
_WASI_VERSION = re.compile(r"0\.2\.(0|[1-9][0-9]*)")
"""Wasmtime links any WASI 0.2.x import to its 0.2 implementation; pre-releases are not 0.2."""

_CORRAL_MAJOR_MINOR, _, _CORRAL_PATCH = WIT_VERSION.rpartition(".")
_CORRAL_IMPORTS = frozenset(
    f"{WIT_PACKAGE}/{name}" for name in ("types", *(cap.name for cap in CAPABILITIES))
)

# The handler's types as `describe_type` writes them, and the WIT names that stand for them
# in messages.
_RATE_LIMIT = "record {retry-after-ms: u64, message: string}"
_PLUGIN_ERROR = (
    "variant {permission-denied(string), not-found(string), invalid-input(string), "
    f"conflict(string), rate-limited({_RATE_LIMIT}), timeout(string), unavailable(string), "
    "internal(string)}"
)
_EVENT = "record {source: string, type: string, id: string, payload: string, received-at: u64}"
_HANDLER_FUNCTIONS = {
    "invoke": f"func(string, string) -> result<string, {_PLUGIN_ERROR}>",
    "on-event": f"func({_EVENT}) -> result<_, {_PLUGIN_ERROR}>",
}
_WIT_NAMES = {_PLUGIN_ERROR: "plugin-error", _EVENT: "event", _RATE_LIMIT: "rate-limit"}


def check_world(ctype: ComponentType, engine: Engine, source: str) -> None:
    """Refuse a component that does not fit the world; `source` names it in the message."""
    for name in ctype.imports(engine):
        _check_import(name, source)
    exports = ctype.exports(engine)
    versions = [name for name in exports if name.startswith(f"{WIT_PACKAGE}/handler@")]
    export = next((name for name in versions if _compatible(name.partition("@")[2])), None)
    if export is None:
        found = f" (it exports {', '.join(versions)})" if versions else ""
        raise BundleError(
            f"{source} does not export {HANDLER} or an earlier {_CORRAL_MAJOR_MINOR}.x"
            f"{found}; see plugin-sdk/wit"
        )
    handler = exports[export].ty
    if not isinstance(handler, ComponentInstanceType):
        raise BundleError(f"{source}: its export {export} is not an interface instance")
    functions = handler.exports(engine)
    missing = [name for name in _HANDLER_FUNCTIONS if name not in functions]
    if missing:
        raise BundleError(f"{source}: {export} lacks {' and '.join(missing)}")
    for name, expected in _HANDLER_FUNCTIONS.items():
        function = functions[name].ty
        actual = _describe_func(function) if isinstance(function, FuncType) else "not a function"
        if actual != expected:
            raise BundleError(
                f"{source}: {export}#{name} is {_abbreviated(actual)}, "
                f"expected {_abbreviated(expected)}"
            )


def _check_import(name: str, source: str) -> None:
    interface, _, version = name.partition("@")
    if interface in _CORRAL_IMPORTS:
        if _compatible(version):
            return
        reason = f"this host provides {interface}@{WIT_VERSION}"
    elif interface in WASI_INTERFACES:
        if _WASI_VERSION.fullmatch(version):
            return
        reason = f"this host provides {interface} in WASI 0.2.x only"
    elif interface.startswith(f"{WIT_PACKAGE}/"):
        known = ", ".join(sorted(n.removeprefix(f"{WIT_PACKAGE}/") for n in _CORRAL_IMPORTS))
        reason = f"{WIT_PACKAGE} has no such interface (it has {known})"
    elif interface.startswith("wasi:"):
        reason = "this host does not provide that WASI interface"
    else:
        reason = f"this host provides only {WIT_PACKAGE} and WASI 0.2 interfaces"
    raise BundleError(f"{source} imports {name}: {reason}")


def _compatible(version: str) -> bool:
    """Whether this host serves a component built against ``corral:plugin`` `version`: the
    same 0.minor, no newer patch (a patch only adds functions, and Wasmtime links an import or
    finds an export of an earlier patch under this host's version)."""
    major_minor, _, patch = version.rpartition(".")
    return (
        major_minor == _CORRAL_MAJOR_MINOR and patch.isdigit() and int(patch) <= int(_CORRAL_PATCH)
    )


def _describe_func(function: FuncType) -> str:
    params = ", ".join(describe_type(ty) for _, ty in function.params)
    result = function.result
    return f"func({params})" + ("" if result is None else f" -> {describe_type(result)}")


def describe_type(ty: ValType) -> str:
    """A value type as WIT-like text that spells out every record, variant and enum."""
    if isinstance(ty, ListType):
        return f"list<{describe_type(ty.element)}>"
    if isinstance(ty, OptionType):
        return f"option<{describe_type(ty.payload)}>"
    if isinstance(ty, ResultType):
        if ty.ok is None and ty.err is None:
            return "result"
        ok = "_" if ty.ok is None else describe_type(ty.ok)
        return f"result<{ok}>" if ty.err is None else f"result<{ok}, {describe_type(ty.err)}>"
    if isinstance(ty, TupleType):
        return "tuple<" + ", ".join(describe_type(t) for t in ty.elements) + ">"
    if isinstance(ty, RecordType):
        return "record {" + ", ".join(f"{n}: {describe_type(t)}" for n, t in ty.fields) + "}"
    if isinstance(ty, VariantType):
        cases = (n if t is None else f"{n}({describe_type(t)})" for n, t in ty.cases)
        return "variant {" + ", ".join(cases) + "}"
    if isinstance(ty, EnumType | FlagsType):
        kind = "enum" if isinstance(ty, EnumType) else "flags"
        return f"{kind} {{" + ", ".join(ty.names) + "}"
    if isinstance(ty, OwnType | BorrowType | FutureType | StreamType):
        return type(ty).__name__.removesuffix("Type").lower() + "<...>"
    return type(ty).__name__.lower()  # the primitive types: String, U64, Bool...


def _abbreviated(text: str) -> str:
    for spelled_out, name in _WIT_NAMES.items():
        text = text.replace(spelled_out, name)
    return text
