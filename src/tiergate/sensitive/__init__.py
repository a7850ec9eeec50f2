"""Sensitive data: finding it (cards, SSNs, IBANs, phones, emails, secrets) and masking it, one layer for logs, spans, records and previews."""

from tiergate.sensitive._detect import (
    EMAIL,
    KINDS,
    Finding,
    card_numbers,
    find,
    luhn_valid,
    pii_kinds,
)
from tiergate.sensitive._detect_v1 import pii_kinds as pii_kinds_v1
from tiergate.sensitive._redact import (
    DEFAULT_REDACTOR,
    DEFAULT_SECRET_FIELDS,
    PiiKind,
    RedactionConfig,
    Redactor,
    field_key,
)

__all__ = [
    "DEFAULT_REDACTOR",
    "DEFAULT_SECRET_FIELDS",
    "EMAIL",
    "KINDS",
    "Finding",
    "PiiKind",
    "RedactionConfig",
    "Redactor",
    "card_numbers",
    "field_key",
    "find",
    "luhn_valid",
    "pii_kinds",
    "pii_kinds_v1",
]
