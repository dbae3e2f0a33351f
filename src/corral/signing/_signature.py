"""The detached signature of a bundle, ``signature.json``, and the statement it signs.

The signature covers one canonical statement rebuilt from the bundle on disk at every check::

    corral-bundle-signature/1
    key <key id>
    manifest sha256:<sha256 of manifest.yaml's exact bytes>
    component sha256:<sha256 of the component>

The first line separates these signatures from anything else the key might sign and carries the
format version; every other field has a fixed form, so no two bundles share a statement. The
digests in the file only help to say *what* changed: verification never trusts them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from .._errors import SignatureError
from .._regular_file import read_regular_file
from ..bundle import Bundle
from ._keys import ALGORITHM, PublicKey, SigningKey

__all__ = ["SIGNATURE_FILENAME", "BundleSignature", "read_signature", "sign_bundle"]

SIGNATURE_FILENAME = "signature.json"
_FORMAT: Final = "corral-bundle-signature/1"


def _statement(key_id: str, manifest_sha256: str, component_sha256: str) -> bytes:
    return (
        f"{_FORMAT}\nkey {key_id}\nmanifest sha256:{manifest_sha256}\n"
        f"component sha256:{component_sha256}\n"
    ).encode()


class _SignatureFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["corral-bundle-signature/1"]
    algorithm: Literal["ed25519"]
    key_id: str
    public_key: str
    manifest_sha256: str
    component_sha256: str
    signature: str


@dataclass(frozen=True)
class BundleSignature:
    """A signature read from a bundle, not yet checked against it."""

    public_key: PublicKey
    manifest_sha256: str
    component_sha256: str
    signature: bytes
    path: str

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def check(self, bundle: Bundle) -> None:
        """Raise `SignatureError` unless this signature covers the bundle as it is now."""
        if self.manifest_sha256 != bundle.manifest_sha256:
            what = "manifest.yaml changed since it was signed"
        elif self.component_sha256 != bundle.wasm_sha256:
            what = f"{bundle.wasm_path.name} changed since it was signed"
        else:
            what = "the signature does not verify"
        statement = _statement(self.key_id, bundle.manifest_sha256, bundle.wasm_sha256)
        if not self.public_key.verifies(self.signature, statement):
            raise SignatureError(f"{self.path}: {what} (key {self.key_id}); sign the bundle again")


def read_signature(bundle: Bundle) -> BundleSignature | None:
    """The bundle's signature, or None when it has no signature file."""
    path = bundle.directory / SIGNATURE_FILENAME
    if path.is_symlink():  # like the manifest and component, it must be the bundle's own file
        raise SignatureError(f"{path}: is a symbolic link; a bundle's files must be its own")
    if not path.exists():
        return None
    data = read_regular_file(
        path, bundle.limits.max_manifest_bytes, "bundles.max_manifest_size", SignatureError
    )
    try:
        fields = _SignatureFile.model_validate_json(data)
        raw = base64.b64decode(fields.signature, validate=True)
    except (ValidationError, binascii.Error, ValueError):
        raise SignatureError(
            f"{path}: not a valid {SIGNATURE_FILENAME} (write it with `corral sign`)"
        ) from None
    public_key = PublicKey.parse(fields.public_key, f"{path}: public_key", SignatureError)
    if public_key.key_id != fields.key_id:
        raise SignatureError(f"{path}: key_id does not match public_key")
    return BundleSignature(
        public_key, fields.manifest_sha256, fields.component_sha256, raw, str(path)
    )


def sign_bundle(bundle: Bundle, key: SigningKey) -> BundleSignature:
    """Write the bundle's signature file (replacing any earlier one) and return it."""
    public = key.public_key
    statement = _statement(public.key_id, bundle.manifest_sha256, bundle.wasm_sha256)
    signature = key.sign(statement)
    document = _SignatureFile(
        format=_FORMAT,
        algorithm=ALGORITHM,
        key_id=public.key_id,
        public_key=public.text,
        manifest_sha256=bundle.manifest_sha256,
        component_sha256=bundle.wasm_sha256,
        signature=base64.b64encode(signature).decode(),
    )
    path = bundle.directory / SIGNATURE_FILENAME
    staged = path.with_name(f".{SIGNATURE_FILENAME}.tmp")
    staged.write_text(json.dumps(document.model_dump(), indent=2) + "\n", encoding="utf-8")
    os.replace(staged, path)
    return BundleSignature(public, bundle.manifest_sha256, bundle.wasm_sha256, signature, str(path))
