"""Corral: a WebAssembly-sandboxed plugin host.

>>> from corral import PluginHost
"""

from importlib import metadata as _metadata

from ._errors import (
    BuildError,
    BundleError,
    ChecksumMismatch,
    CircuitOpen,
    ConfigError,
    Conflict,
    CorralError,
    HostApiError,
    HostNotReady,
    HostTimeout,
    InvalidCommandInput,
    InvalidInput,
    ManifestError,
    NotFound,
    PermissionDenied,
    PluginError,
    PluginFuelExhausted,
    PluginMemoryExceeded,
    PluginNotFound,
    PluginTimeout,
    PluginTrap,
    PluginUnavailable,
    ProtocolError,
    RateLimited,
    SignatureError,
    Unavailable,
)
from .bundle import Bundle
from .host import PluginHost
from .manifest import Manifest, load_manifest
from .registry import PluginInfo

try:
    __version__ = _metadata.version("corral")
except _metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "BuildError",
    "Bundle",
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
    "Manifest",
    "ManifestError",
    "NotFound",
    "PermissionDenied",
    "PluginError",
    "PluginFuelExhausted",
    "PluginHost",
    "PluginInfo",
    "PluginMemoryExceeded",
    "PluginNotFound",
    "PluginTimeout",
    "PluginTrap",
    "PluginUnavailable",
    "ProtocolError",
    "RateLimited",
    "SignatureError",
    "Unavailable",
    "__version__",
    "load_manifest",
]
