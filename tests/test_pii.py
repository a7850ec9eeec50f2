"""The PII detector behind `output.contains_pii` and previews."""

from __future__ import annotations

import pytest

from tiergate.pii import luhn_valid, pii_kinds
from tiergate.redaction import DEFAULT_REDACTOR


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to pat@example.com", ["email"]),
        ("card 4111 1111 1111 1111", ["card_number"]),
        ("call +1 415-555-0100", ["phone"]),
        ("token sk-live_abcdefghijklmnop1234", ["secret"]),
        ("order ORD-5001, refund $35.00 on 2026-11-24", []),
        ("not a card 4111 1111 1111 1112", []),
    ],
)
def test_kinds(text: str, kinds: list[str]) -> None:
    assert pii_kinds(text) == kinds


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_redact_masks_every_kind() -> None:
    text = "pat@example.com paid with 4111-1111-1111-1111"
    masked = DEFAULT_REDACTOR.text(text)
    assert "pat@" not in masked
    assert "4111" not in masked
    assert pii_kinds(masked) == []
