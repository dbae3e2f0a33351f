"""Corral's exceptions.

The whole tree::

    CorralError
    ├── ConfigError                  the operator's corral.yaml (or a host argument) is invalid
    ├── ManifestError                a bundle's manifest.yaml is invalid
    ├── BundleError                  a bundle cannot be used (missing wasm, path escapes the bundle)
    │   ├── ChecksumMismatch         plugin.wasm does not match security.checksum
    │   └── SignatureError           signature.json is missing, broken or not from a trusted key
    ├── BuildError                   `corral build` or `corral new` failed
    ├── PluginNotFound               no plugin of that name was discovered
    ├── PluginUnavailable            the plugin was discovered but failed to load (reason attached)
    │   ├── CircuitOpen              it kept trapping; calls fail fast until a trial call succeeds
    │   └── HostNotReady             the PluginHost was called before `load()` or after `close()`
    ├── PluginError                  the plugin returned an error value (kind + message)
    │   └── InvalidCommandInput      the input breaks the command's declared input_schema; the
    │                                plugin was not entered (kind ``invalid-input``)
    ├── ProtocolError                the plugin's answer breaks the protocol it follows (sync),
    │                                or its declared output_schema when asked to check it
    ├── PluginTrap                   the plugin's WebAssembly trapped; its instance was discarded
    │   ├── PluginTimeout            it ran past its execution_timeout
    │   ├── PluginMemoryExceeded     it needed more memory than its memory_limit
    │   └── PluginFuelExhausted      it used up its per-call instruction budget
    └── HostApiError                 a host capability refused a plugin's request; crosses the
        │                            boundary as a `plugin-error` value, never as a trap
        ├── PermissionDenied         a permission was not granted (also raised at load time)
        ├── NotFound
        ├── InvalidInput
        ├── Conflict
        ├── RateLimited              carries retry_after_ms
        ├── HostTimeout
        └── Unavailable

Errors of the operator's side (config, manifest, bundle) and of the plugin's side (traps, error
values) are separate branches, so an embedding application can tell "fix your setup" from "the
plugin misbehaved".
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "BundleError",
    "ChecksumMismatch",
    "CircuitOpen",
    "ConfigError",
    "Conflict",
    "CorralError",
    "HostApiError",
    "HostNotReady",
    "HostTimeout",
    "InvalidCommandInput",
    "InvalidInput",
    "ManifestError",
    "NotFound",
    "PermissionDenied",
    "PluginError",
    "PluginFuelExhausted",
    "PluginMemoryExceeded",
    "PluginNotFound",
    "PluginTimeout",
    "PluginTrap",
    "PluginUnavailable",
    "ProtocolError",
    "RateLimited",
    "SignatureError",
    "Unavailable",
    "describe_failure",
]


class CorralError(Exception):
    """Base of every exception Corral raises on purpose."""


class ConfigError(CorralError):
    """The operator's configuration is invalid; the message names the file and field."""


class ManifestError(CorralError):
    """A bundle's manifest.yaml is invalid; the message names the field path."""


class BundleError(CorralError):
    """A bundle cannot be used as it is on disk."""


class ChecksumMismatch(BundleError):
    """The component's sha256 differs from the manifest's `security.checksum`."""


class SignatureError(BundleError):
    """A bundle's signature is missing where required, does not cover it, or is not trusted."""


class BuildError(CorralError):
    """Building a plugin (or creating a plugin project) failed."""


class PluginNotFound(CorralError):
    """No plugin of that name is known to the host."""


class PluginUnavailable(CorralError):
    """The plugin was discovered but is not loaded (failed or disabled)."""


class CircuitOpen(PluginUnavailable):
    """The plugin kept trapping or timing out, so its calls fail fast for a while.

    `retry_after_s` is how long until the next trial call is let through.
    """

    def __init__(self, plugin: str, message: str, retry_after_s: float):
        super().__init__(message)
        self.plugin = plugin
        self.retry_after_s = retry_after_s


class HostNotReady(PluginUnavailable):
    """The `PluginHost` has no plugins to call: `load()` was not called yet, or `close()` was.

    A `PluginUnavailable`, so code that retries a plugin not loaded yet (a server starting up)
    treats it alike.
    """


class PluginError(CorralError):
    """The plugin returned a `plugin-error` value.

    `kind` is the WIT case name (``invalid-input``, ``not-found``, ...).
    """

    def __init__(self, plugin: str, kind: str, message: str, retry_after_ms: int | None = None):
        super().__init__(f"plugin {plugin!r} returned {kind}: {message}")
        self.plugin = plugin
        self.kind = kind
        self.message = message
        self.retry_after_ms = retry_after_ms


class InvalidCommandInput(PluginError):
    """A call's input does not match the `input_schema` its manifest declares for the command.

    The host checks before entering the plugin, so the plugin never ran. It is the
    ``invalid-input`` error the plugin itself would answer, and is handled like one; `message`
    names the command and the field (``greet: input.name: 'name' is a required property``).
    """

    def __init__(self, plugin: str, message: str):
        super().__init__(plugin, "invalid-input", message)
        # Not "returned": the plugin never saw this input.
        self.args = (f"plugin {plugin!r}: {message}",)


class ProtocolError(CorralError):
    """A plugin answered a protocol command (such as `sync`), or a command whose output a caller
    asked to check against its `output_schema`, with JSON of the wrong shape; the message names
    the command and the field."""


class PluginTrap(CorralError):
    """The plugin's WebAssembly trapped. The instance is discarded; the next call gets a new one.

    `trap` names the kind of trap (``unreachable``, ``stack overflow``, ``out of bounds``...) and
    `backtrace` holds the first frames of the wasm backtrace.
    """

    def __init__(self, plugin: str, trap: str, backtrace: str = "", detail: str = ""):
        text = f"plugin {plugin!r} trapped: {trap}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
        self.plugin = plugin
        self.trap = trap
        self.backtrace = backtrace


class PluginTimeout(PluginTrap):
    """The call ran past the plugin's execution_timeout."""


class PluginMemoryExceeded(PluginTrap):
    """The plugin needed more linear memory than its memory_limit allows."""


class PluginFuelExhausted(PluginTrap):
    """The call used up the plugin's per-call fuel budget."""


class HostApiError(CorralError):
    """A host capability refused or failed a plugin's request.

    These never trap the guest: the runtime turns them into the WIT `plugin-error` case named by
    `kind`.
    """

    kind = "internal"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PermissionDenied(HostApiError):
    """A permission the action needs was not granted by the operator."""

    kind = "permission-denied"


class NotFound(HostApiError):
    kind = "not-found"


class InvalidInput(HostApiError):
    kind = "invalid-input"


class Conflict(HostApiError):
    """An optimistic-concurrency check failed."""

    kind = "conflict"


class RateLimited(HostApiError):
    kind = "rate-limited"

    def __init__(self, message: str, retry_after_ms: int):
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class HostTimeout(HostApiError):
    kind = "timeout"


class Unavailable(HostApiError):
    kind = "unavailable"


def describe_failure(error: Exception) -> str:
    """`error` as one line; an exception Corral did not raise on purpose is named as such."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(error, CorralError):
        return text or type(error).__name__
    return f"unexpected {type(error).__name__}" + (f": {text}" if text else "")
