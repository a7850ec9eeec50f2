"""The PII detector behind `output.contains_pii` and previews."""

from __future__ import annotations

import pytest

from tiergate.sensitive import DEFAULT_REDACTOR, luhn_valid, pii_kinds


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


ONE_MB = 1024 * 1024


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("x" * ONE_MB, []),
        ("sk-" * (ONE_MB // 3), ["secret"]),
        ("ghp_" + "a" * ONE_MB + "-", ["secret"]),
        ("a@" + "x." * (ONE_MB // 2), []),
        ("1-" * (ONE_MB // 2), []),
        ("x" * ONE_MB + " pat@example.com", ["email"]),
        ("eyJ" * (ONE_MB // 3), []),
        ("xoxb-" * (ONE_MB // 5), ["secret"]),
        ("://a" * (ONE_MB // 4), []),
        ("-----BEGIN PRIVATE KEY-----" * (ONE_MB // 27), ["secret"]),
        ("4111 " * (ONE_MB // 5), []),
        ("AB12 " * (ONE_MB // 5), []),
        ("call 555-123-4567 " * (ONE_MB // 18), ["phone"]),
        ("\uff11" * ONE_MB, []),
        ("aws" * (ONE_MB // 3), []),
        ("SSN " * (ONE_MB // 4), []),
    ],
    ids=[
        "one-long-run",
        "repeated-key-prefix",
        "long-key",
        "dotted-domain",
        "dashed-digits",
        "tail",
        "jwt-prefixes",
        "slack-prefixes",
        "url-credentials",
        "pem-headers",
        "card-groups",
        "iban-groups",
        "many-phones",
        "fullwidth-digits",
        "aws-keywords",
        "ssn-keywords",
    ],
)
def test_scanning_stays_linear_on_hostile_megabytes(text: str, kinds: list[str]) -> None:
    """Found by the hostile-run drill: the email pattern, tried from every position of a
    four-megabyte run, stalled the tool activity for hours. At one megabyte each of these
    still outlasts the timeout with quadratic patterns; linear ones take about a second."""
    assert pii_kinds(text) == kinds
    assert pii_kinds(DEFAULT_REDACTOR.text(text)) == []


def test_a_whole_secret_is_masked_not_just_its_prefix() -> None:
    masked = DEFAULT_REDACTOR.text("key sk-live_abcdefghijklmnop1234XYZ-end, ghp_" + "b" * 40 + ".")
    assert "1234XYZ" not in masked
    assert "end" not in masked.split("key", 1)[1].split(",")[0]
    assert "b" * 10 not in masked
