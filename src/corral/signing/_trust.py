"""Which signers an operator trusts, and checking a bundle against that before it is compiled.

A bundle without ``signature.json`` loads only where signatures are not required. A bundle with
one must carry a signature that covers it as it is on disk, whoever signed it: a broken
signature means the bundle changed after signing, which is worth refusing even where nobody asked
for signatures. Where signatures are required, the signer must also be one of the trusted keys
(and, when the plugin dir names its signers, one of those).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import SignatureError
from ..bundle import Bundle
from ._keys import PublicKey
from ._signature import SIGNATURE_FILENAME, read_signature

__all__ = ["Signer", "TrustPolicy", "TrustedKey"]


@dataclass(frozen=True)
class TrustedKey:
    """A public key the operator trusts, under the name the operator gave it."""

    name: str
    key: PublicKey


@dataclass(frozen=True)
class Signer:
    """Who signed a bundle: the key id, and the operator's name for it when it is trusted."""

    key_id: str
    name: str | None = None

    def __str__(self) -> str:
        if self.name is None:
            return f"key {self.key_id} (not a trusted key)"
        return f"{self.name} (key {self.key_id})"


@dataclass(frozen=True)
class TrustPolicy:
    """The signature rules of one plugin dir."""

    keys: tuple[TrustedKey, ...] = ()
    require_signatures: bool = False
    signers: frozenset[str] | None = None
    """The names of the trusted keys accepted here; None accepts every trusted key."""
    where: str = "trust"
    """The config section these rules come from, for error messages."""

    def signer(self, bundle: Bundle) -> Signer | None:
        """Who signed `bundle` (None: unsigned); `SignatureError` when the rules refuse it."""
        signature = read_signature(bundle)
        if signature is None:
            if self.require_signatures:
                raise SignatureError(
                    f"{bundle.directory}: not signed (no {SIGNATURE_FILENAME}), and "
                    f"{self.where}.require_signatures is set; sign it with `corral sign`"
                )
            return None
        signature.check(bundle)
        name = self._name_of(signature.public_key)
        signer = Signer(signature.key_id, name)
        if not self.require_signatures:
            return signer
        if name is None:
            raise SignatureError(
                f"{bundle.directory}: signed by key {signature.key_id}, which is not in trust.keys"
            )
        if self.signers is not None and name not in self.signers:
            raise SignatureError(
                f"{bundle.directory}: signed by {name!r}, which {self.where}.signers does not "
                f"accept (accepted: {', '.join(sorted(self.signers)) or 'none'})"
            )
        return signer

    def _name_of(self, key: PublicKey) -> str | None:
        return next((trusted.name for trusted in self.keys if trusted.key == key), None)
