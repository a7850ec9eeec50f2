"""Approvals: signed approver answers and the approver registry.

This package's top level is pure (models, signing, the registry file) so workflows can import
it; the client helpers the CLI and web page use live in `tiergate.approvals.client`.
"""

from tiergate.approvals._registry import Approver, ApproverError, ApproverRegistry, RegistrySnapshot
from tiergate.approvals._signing import (
    ApprovalDecision,
    ApprovalRequest,
    generate_key,
    key_id,
    public_key_text,
    sign,
    verify,
)

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "ApproverError",
    "ApproverRegistry",
    "RegistrySnapshot",
    "generate_key",
    "key_id",
    "public_key_text",
    "sign",
    "verify",
]
