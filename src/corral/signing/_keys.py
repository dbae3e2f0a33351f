"""Ed25519 keys: generating, storing and reading them, and their compact text form.

A public key is written ``ed25519:<base64url of the 32 raw bytes>``; its key id is the first 16
hex digits of the sha256 of those bytes, short enough to read aloud and to print in one line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._errors import ConfigError, CorralError, SignatureError

__all__ = ["ALGORITHM", "PublicKey", "SigningKey"]

ALGORITHM: Final = "ed25519"
_PREFIX = f"{ALGORITHM}:"
_RAW_LENGTH = 32
_MAX_KEY_FILE = 16 << 10


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key, as operators list it under ``trust.keys``."""

    raw: bytes

    @classmethod
    def parse(cls, text: str, where: str, error: type[CorralError] = ConfigError) -> PublicKey:
        """Read ``ed25519:<base64url>``; `where` names the field or file in the error."""
        text = text.strip()
        if not text.startswith(_PREFIX):
            raise error(f'{where}: a public key starts with "{_PREFIX}" (see `corral keygen`)')
        body = text.removeprefix(_PREFIX)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise error(f"{where}: the public key is not base64url") from None
        if len(raw) != _RAW_LENGTH:
            raise error(f"{where}: an Ed25519 public key has {_RAW_LENGTH} bytes, not {len(raw)}")
        return cls(raw)

    @classmethod
    def read(cls, path: Path) -> PublicKey:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read(_MAX_KEY_FILE)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the public key: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a public key (not UTF-8 text)") from None
        return cls.parse(text, str(path))

    def write(self, path: Path) -> None:
        """Write the text form to a new file; an existing file is kept."""
        try:
            with open(path, "x", encoding="utf-8") as file:
                file.write(self.text + "\n")
        except FileExistsError:
            raise SignatureError(f"{path}: already exists; not overwriting a key") from None
        except OSError as exc:
            raise SignatureError(f"{path}: cannot write the public key: {exc.strerror}") from None

    @property
    def text(self) -> str:
        return _PREFIX + base64.urlsafe_b64encode(self.raw).decode().rstrip("=")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key; stored as unencrypted PKCS#8 PEM readable by its owner only."""

    _key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def read(cls, path: Path) -> SigningKey:
        try:
            with open(path, "rb") as file:
                data = file.read(_MAX_KEY_FILE)
            key = serialization.load_pem_private_key(data, password=None)
        except OSError as exc:
            raise SignatureError(f"{path}: cannot read the signing key: {exc.strerror}") from None
        except (ValueError, TypeError):
            raise SignatureError(
                f"{path}: not an unencrypted PEM private key (make one with `corral keygen`)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SignatureError(f"{path}: not an Ed25519 key (make one with `corral keygen`)")
        return cls(key)

    def write(self, path: Path) -> None:
        """Write the key to a new file created with mode 0600; an existing file is kept."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: a key is never overwritten, and the mode is set at creation, so the secret
            # is never readable by others even for a moment.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise SignatureError(f"{path}: already exists; not overwriting a key") from None
        except OSError as exc:
            raise SignatureError(f"{path}: cannot create the key file: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as file:
            file.write(pem)

    @property
    def public_key(self) -> PublicKey:
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublicKey(raw)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)
