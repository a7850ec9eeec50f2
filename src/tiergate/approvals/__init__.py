"""Approvals from the approver's side: key pairs and signatures, the approver registry, web credentials."""

from tiergate.approvals._credentials import (
    MIN_PASSWORD,
    Credentials,
)
from tiergate.approvals._registry import (
    ApproverRegistry,
    admin_key_path,
    dev_admin,
    trusting_dev_admin,
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
    "admin_key_path",
    "dev_admin",
    "generate_key",
    "public_key_text",
    "read_private_key",
    "sign",
    "trusting_dev_admin",
    "write_private_key",
]
