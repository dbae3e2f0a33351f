"""What a host capability is: one WIT interface, its permissions, its operator options.

A capability takes part in three steps, after Spin's factors:

1. `configure` (once per plugin, at load): validate the operator's options this capability owns
   and build the plugin's state for it. Problems raise `ConfigError`, tagged with the capability.
2. `host_functions` (once per plugin): the implementations of the WIT interface's functions,
   each with the permission it needs. The runtime links them; functions whose permission was not
   granted are linked too, but answer `permission-denied` without running.
3. Per call, every host function receives the `CallContext` of the call in progress.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._audit import current_call_id, new_call_id
from .._settings_origin import SettingsOrigin

if TYPE_CHECKING:
    from ..host_services import HostServices
    from ..manifest import Manifest

__all__ = ["CallContext", "Capability", "HostFunction", "PluginContext"]


@dataclass
class CallContext:
    """The call in progress, as host functions see it."""

    plugin: str
    deadline: float
    """`time.monotonic()` value past which the call is timed out."""
    counters: dict[str, int] = field(default_factory=dict)
    """Per-call counters capabilities keep (e.g. HTTP requests made so far)."""
    state: dict[str, Any] = field(default_factory=dict)
    """Per-call state capabilities keep (e.g. HTTP bodies), keyed by capability; it goes
    when the call ends."""
    call_id: str = field(default_factory=lambda: current_call_id() or new_call_id())
    """The id tying this call's audit entries together."""
    _at_end: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def at_end(self, action: Callable[[], None]) -> None:
        """Run `action` when the call's guest code is done, before the call answers (e.g. to
        wait for work the call started). It must not raise."""
        self._at_end.append(action)

    def end(self) -> None:
        """The call's guest code is done: run what `at_end` registered."""
        while self._at_end:
            self._at_end.pop(0)()

    def count(self, name: str) -> int:
        """Increment and return the per-call counter `name`."""
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]


@dataclass(frozen=True)
class PluginContext:
    """What a capability may know about the plugin it configures."""

    name: str
    manifest: Manifest
    granted: frozenset[str]
    """The permissions in force: requested by the manifest and granted by the operator."""
    options: Mapping[str, Any]
    """The operator's per-plugin options this capability owns (its `option_keys`)."""
    plugin_config: Mapping[str, Any]
    data_dir: Path
    services: HostServices
    origin: SettingsOrigin = field(default_factory=SettingsOrigin)
    """Where the operator's settings came from, for messages that name one."""


HostImpl = Callable[..., Any]


@dataclass(frozen=True)
class HostFunction:
    """One function of a capability's WIT interface.

    `impl(call, *wit_args)` returns the WIT value of the function's `ok` case (or nothing for a
    function without a result) and raises `HostApiError` for the `err` case.
    """

    name: str
    impl: HostImpl
    permission: str | None = None


class Capability(ABC):
    """A host capability: one WIT interface of ``corral:plugin``."""

    name: ClassVar[str]
    """The WIT interface name, e.g. ``"http"``."""
    permissions: ClassVar[tuple[str, ...]] = ()
    """Permission names this capability owns."""
    permission_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Shorthands a manifest or grant may use, e.g. ``task.read_write``."""
    option_types: ClassVar[Mapping[str, Any]] = {}
    """Keys of ``plugins.<name>`` in corral.yaml this capability owns, and the type (a pydantic
    model, or e.g. a list of one) each is validated as when the config is read. `configure`
    checks what needs the manifest too."""
    option_keys: ClassVar[tuple[str, ...]] = ()
    """The keys of `option_types`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.option_keys = tuple(cls.option_types)

    def configure(self, plugin: PluginContext) -> Any:
        """Validate the options this capability owns and build its per-plugin state.

        A capability without options of its own keeps the plugin's context as its state.
        """
        return plugin

    @abstractmethod
    def host_functions(self, state: Any) -> list[HostFunction]:
        """The implementations of this capability's WIT functions for one plugin."""

    def close(self, state: Any) -> None:  # noqa: B027 - optional hook, most have nothing to free
        """Release what `configure` acquired for one plugin."""
