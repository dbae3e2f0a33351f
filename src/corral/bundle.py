"""A plugin bundle on disk: a directory holding manifest.yaml and the component it names.

Everything in a bundle is its author's input. Both files must resolve inside the bundle and be
regular files under a size cap (see `BundleLimits`), and the component must be a binary
WebAssembly *component*: Wasmtime would also accept the text format, whose parser can need many
times the file's size in memory, and core modules cannot be linked against the host's WIT world.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import BundleError, ChecksumMismatch, CorralError, ManifestError
from ._regular_file import read_regular_file
from .manifest import MANIFEST_FILENAME, MAX_MANIFEST_BYTES, Manifest, parse_manifest

__all__ = ["Bundle", "BundleLimits", "check_component_header", "sha256_hex"]

_WASM_MAGIC = b"\0asm"
_COMPONENT_LAYER = 1
_CORE_MODULE_LAYER = 0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BundleLimits:
    """Caps on what reading a bundle may cost; set by ``bundles:`` in corral.yaml."""

    max_manifest_bytes: int = MAX_MANIFEST_BYTES
    max_component_bytes: int = 256 << 20


@dataclass(frozen=True)
class Bundle:
    """A bundle whose manifest is valid and whose component matches its checksum."""

    directory: Path
    manifest: Manifest
    wasm_path: Path
    wasm_sha256: str
    manifest_sha256: str
    """The sha256 of the exact manifest bytes that were validated (what a signature covers)."""
    limits: BundleLimits = field(default_factory=BundleLimits)

    @property
    def name(self) -> str:
        return self.manifest.name

    @classmethod
    def open(cls, directory: Path, limits: BundleLimits | None = None) -> Bundle:
        """Validate the manifest, locate the component inside the bundle, verify its checksum.

        Nothing is compiled here: a bundle whose checksum does not match, or whose component is
        not a binary component, is rejected first.
        """
        directory = Path(directory)
        limits = limits or BundleLimits()
        manifest_path = _inside(directory, MANIFEST_FILENAME, None)
        # Read once: the bytes validated are the bytes hashed, so a signature cannot be checked
        # against one manifest while another is used.
        manifest_bytes = read_regular_file(
            manifest_path, limits.max_manifest_bytes, "bundles.max_manifest_size", ManifestError
        )
        manifest = parse_manifest(manifest_bytes, manifest_path)
        wasm_path = _inside(directory, manifest.runtime.wasm_file, "runtime.wasm_file")
        data = _read_component(directory, wasm_path, limits)
        actual = sha256_hex(data)
        expected = manifest.security.checksum.removeprefix("sha256:")
        if actual != expected:
            raise ChecksumMismatch(
                f"{wasm_path}: checksum mismatch: manifest says sha256:{expected[:16]}…, "
                f"the file is sha256:{actual[:16]}…"
            )
        check_component_header(wasm_path, data)
        return cls(directory, manifest, wasm_path, actual, sha256_hex(manifest_bytes), limits)

    def read_verified_wasm(self) -> bytes:
        """The component's bytes, checked again so a file swapped after `open` is refused."""
        data = _read_component(self.directory, self.wasm_path, self.limits)
        if sha256_hex(data) != self.wasm_sha256:
            raise ChecksumMismatch(f"{self.wasm_path}: changed on disk after it was verified")
        return data


def _inside(directory: Path, relative: str, field_name: str | None) -> Path:
    """Resolve `relative` in the bundle, refusing anything (symlinks included) that escapes it.

    `field_name` is the manifest field that named the path (None for the manifest itself).
    """
    try:
        root = directory.resolve()
        candidate = (directory / relative).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise BundleError(f"{directory / relative}: cannot resolve: {exc}") from None
    if not candidate.is_relative_to(root):
        where = str(directory / MANIFEST_FILENAME) + (f": {field_name}" if field_name else "")
        raise BundleError(f"{where}: {relative!r} resolves outside the bundle")
    return candidate


def _read_component(directory: Path, wasm_path: Path, limits: BundleLimits) -> bytes:
    if not wasm_path.exists() and not wasm_path.is_symlink():
        raise BundleError(
            f"{directory}: component {wasm_path.name!r} is missing (build it with `corral build`)"
        )
    return read_regular_file(
        wasm_path, limits.max_component_bytes, "bundles.max_component_size", BundleError
    )


def check_component_header(
    wasm_path: Path, data: bytes, error: type[CorralError] = BundleError
) -> None:
    """Accept only the binary component encoding: magic, a version, then layer 1."""
    if len(data) < 8 or data[:4] != _WASM_MAGIC:
        raise error(
            f"{wasm_path}: not a WebAssembly binary (the text format is not accepted; "
            "`corral build` writes a binary component)"
        )
    layer = int.from_bytes(data[6:8], "little")
    if layer == _CORE_MODULE_LAYER:
        raise error(
            f"{wasm_path}: a core module, not a component (plugins must be components built "
            "against plugin-sdk/wit, e.g. with `corral build`)"
        )
    if layer != _COMPONENT_LAYER:
        raise error(f"{wasm_path}: not a valid WebAssembly component: unknown layer {layer}")
