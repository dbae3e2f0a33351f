"""Host capabilities: one module per WIT interface of ``corral:plugin``.

Adding a capability means adding a module with a `Capability` subclass and listing it in
`CAPABILITIES`; the runtime links every listed capability for every plugin, so a plugin that
imports an interface it was not granted still instantiates and gets `permission-denied` values.
"""

from __future__ import annotations

from ._base import CallContext, Capability, HostFunction, PluginContext
from .config import ConfigCapability
from .http import HttpCapability
from .kv import KvCapability
from .log import LogCapability
from .tasks import TasksCapability

__all__ = [
    "CAPABILITIES",
    "WIT_PACKAGE",
    "CallContext",
    "Capability",
    "HostFunction",
    "PluginContext",
    "wit_interface",
]

WIT_PACKAGE = "corral:plugin"
WIT_VERSION = "0.1.1"

# Order matters only for error messages: configuration problems are reported in this order.
CAPABILITIES: tuple[Capability, ...] = (
    LogCapability(),
    ConfigCapability(),
    HttpCapability(),
    TasksCapability(),
    KvCapability(),
)


def wit_interface(name: str) -> str:
    """The fully qualified import name of a ``corral:plugin`` interface."""
    return f"{WIT_PACKAGE}/{name}@{WIT_VERSION}"
