"""An approver's side of a signed answer: key pairs and signatures.

What is signed and how anyone verifies it is `tiergate.core.answers`; this module holds
the operations that need a private key, which only the approver's own machine has.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from tiergate.core import ApprovalRequest
from tiergate.errors import ApproverError


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw public key, base64: what the registry stores."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(request: ApprovalRequest, key: Ed25519PrivateKey) -> ApprovalRequest:
    signature = base64.b64encode(key.sign(request.signing_message())).decode()
    return request.model_copy(update={"signature": signature})


def write_private_key(path: Path, key: Ed25519PrivateKey, *, replace: bool = False) -> Path:
    """Write ``key`` as PEM to ``path``, readable by its owner only (0600). An existing
    file is kept (FileExistsError) unless ``replace``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    mode = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, mode, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)  # a replaced file keeps its old mode otherwise
    return path


def read_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in the PEM file ``path``, or ApproverError naming what is wrong."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as error:
        raise ApproverError(
            f"cannot read a private key at {path}: {error}",
            fix="pass the file `tiergate approvers keygen` wrote (--key PATH)",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ApproverError(f"{path} is not an Ed25519 key")
    return key
