"""Approvals from the approver's side: key pairs and signatures, the approver registry, web credentials."""

from tiergate.approvals._credentials import (
    MIN_PASSWORD,
    Credentials,
)
from tiergate.approvals._registry import (
    ApproverRegistry,
)
from tiergate.approvals._signing import (
    generate_key,
    public_key_text,
    read_private_key,
    sign,
    write_private_key,
)

__all__ = [
    "MIN_PASSWORD",
    "ApproverRegistry",
    "Credentials",
    "generate_key",
    "public_key_text",
    "read_private_key",
    "sign",
    "write_private_key",
]
