"""An approver's side of a signed answer: key pairs and signatures.

What is signed and how anyone verifies it is `tiergate.core.answers`; this module holds
the operations that need a private key, which only the approver's own machine has.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tiergate.core import ApprovalRequest


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw public key, base64: what the registry stores."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(request: ApprovalRequest, key: Ed25519PrivateKey) -> ApprovalRequest:
    signature = base64.b64encode(key.sign(request.signing_message())).decode()
    return request.model_copy(update={"signature": signature})
