"""Sensitive data: finding it (cards, secrets, emails, phones) and masking it, one layer for logs, spans, records and previews."""

from tiergate.sensitive._detect import (
    EMAIL,
    PHONE,
    SECRET,
    card_numbers,
    luhn_valid,
    pii_kinds,
)
from tiergate.sensitive._redact import (
    DEFAULT_REDACTOR,
    DEFAULT_SECRET_FIELDS,
    PiiKind,
    RedactionConfig,
    Redactor,
)

__all__ = [
    "DEFAULT_REDACTOR",
    "DEFAULT_SECRET_FIELDS",
    "EMAIL",
    "PHONE",
    "SECRET",
    "PiiKind",
    "RedactionConfig",
    "Redactor",
    "card_numbers",
    "luhn_valid",
    "pii_kinds",
]
