"""Raising and recognising `plugin-error` values.

Host functions raise `componentize_py_types.Err` whose `.value` is one of the
`PluginError_*` cases; `kind_of` names the case the way the WIT does ("not-found", ...).
Raising one of the helpers below from a command returns that error to the host as a value.
"""

from componentize_py_types import Err
from wit_world.imports import types

__all__ = [
    "Err",
    "conflict",
    "internal",
    "invalid_input",
    "is_not_found",
    "kind_of",
    "not_found",
    "unavailable",
]


def kind_of(error: Err) -> str:
    """The WIT case name of a plugin error, e.g. ``"not-found"``."""
    name = type(error.value).__name__.removeprefix("PluginError_")
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def is_not_found(error: Err) -> bool:
    return isinstance(error.value, types.PluginError_NotFound)


def invalid_input(message: str) -> Err:
    return Err(types.PluginError_InvalidInput(message))


def not_found(message: str) -> Err:
    return Err(types.PluginError_NotFound(message))


def conflict(message: str) -> Err:
    return Err(types.PluginError_Conflict(message))


def unavailable(message: str) -> Err:
    return Err(types.PluginError_Unavailable(message))


def internal(message: str) -> Err:
    return Err(types.PluginError_Internal(message))
