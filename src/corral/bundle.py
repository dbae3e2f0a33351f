"""A plugin bundle on disk: a directory holding manifest.yaml and the component it names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ._errors import BundleError, ChecksumMismatch
from .manifest import MANIFEST_FILENAME, Manifest, load_manifest

__all__ = ["Bundle", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A bundle whose manifest is valid and whose component matches its checksum."""

    directory: Path
    manifest: Manifest
    wasm_path: Path
    wasm_sha256: str

    @property
    def name(self) -> str:
        return self.manifest.name

    @classmethod
    def open(cls, directory: Path) -> Bundle:
        """Validate the manifest, locate the component inside the bundle, verify its checksum.

        Nothing is compiled here: a bundle whose checksum does not match is rejected first.
        """
        directory = Path(directory)
        manifest = load_manifest(directory / MANIFEST_FILENAME)
        wasm_path = _inside(directory, manifest.runtime.wasm_file)
        data = _read_component(directory, wasm_path)
        actual = sha256_hex(data)
        expected = manifest.security.checksum.removeprefix("sha256:")
        if actual != expected:
            raise ChecksumMismatch(
                f"{wasm_path}: checksum mismatch: manifest says sha256:{expected[:16]}…, "
                f"the file is sha256:{actual[:16]}…"
            )
        return cls(directory, manifest, wasm_path, actual)

    def read_verified_wasm(self) -> bytes:
        """The component's bytes, checked again so a file swapped after `open` is refused."""
        data = _read_component(self.directory, self.wasm_path)
        if sha256_hex(data) != self.wasm_sha256:
            raise ChecksumMismatch(f"{self.wasm_path}: changed on disk after it was verified")
        return data


def _inside(directory: Path, relative: str) -> Path:
    """Resolve `relative` in the bundle, refusing anything (symlinks included) that escapes it."""
    root = directory.resolve()
    candidate = (directory / relative).resolve()
    if not candidate.is_relative_to(root):
        raise BundleError(
            f"{directory / MANIFEST_FILENAME}: runtime.wasm_file: {relative!r} resolves outside "
            "the bundle"
        )
    return candidate


def _read_component(directory: Path, wasm_path: Path) -> bytes:
    try:
        return wasm_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(
            f"{directory}: component {wasm_path.name!r} is missing (build it with `corral build`)"
        ) from None
    except IsADirectoryError:
        raise BundleError(f"{wasm_path}: is a directory, not a component") from None
    except OSError as exc:
        raise BundleError(f"{wasm_path}: cannot read: {exc.strerror}") from None
