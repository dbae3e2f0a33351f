"""Signed bundles: Ed25519 keys, detached bundle signatures, and the operator's trust rules.

``corral keygen`` makes a `SigningKey`; ``corral sign`` writes ``signature.json`` with
`sign_bundle`; the registry asks the plugin dir's `TrustPolicy` for each bundle's `Signer`
before compiling anything.
"""

from ._keys import ALGORITHM, PublicKey, SigningKey
from ._signature import SIGNATURE_FILENAME, BundleSignature, read_signature, sign_bundle
from ._trust import Signer, TrustedKey, TrustPolicy

__all__ = [
    "ALGORITHM",
    "SIGNATURE_FILENAME",
    "BundleSignature",
    "PublicKey",
    "Signer",
    "SigningKey",
    "TrustPolicy",
    "TrustedKey",
    "read_signature",
    "sign_bundle",
]
