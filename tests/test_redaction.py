"""The redaction layer: built-in kinds, configured patterns and per-field rules."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tiergate.sensitive import RedactionConfig, Redactor, pii_kinds

CARD = "4111 1111 1111 1111"


def test_text_masks_each_builtin_kind_by_name() -> None:
    text = (
        f"pat@example.com paid with {CARD}, call +1 415-555-0100, key sk-live_abcdefghijklmnop1234"
    )
    masked = Redactor().text(text)
    assert "[REDACTED:email]" in masked
    assert "[REDACTED:card_number]" in masked
    assert "[REDACTED:phone]" in masked
    assert "[REDACTED:secret]" in masked
    assert pii_kinds(masked) == []


def test_numbers_that_fail_luhn_are_left_alone() -> None:
    assert Redactor().text("order 4111 1111 1111 1112") == "order 4111 1111 1111 1112"


def test_kinds_can_be_narrowed() -> None:
    redactor = Redactor(RedactionConfig(kinds=["card_number"]))
    assert redactor.text(f"pat@example.com {CARD}") == "pat@example.com [REDACTED:card_number]"


def test_configured_patterns_mask_with_their_name() -> None:
    redactor = Redactor(RedactionConfig(patterns={"ticket_pin": r"PIN-\d{4}"}))
    assert redactor.text("use PIN-1234 now") == "use [REDACTED:ticket_pin] now"


def test_field_rules_mask_whole_values_in_nested_data() -> None:
    redactor = Redactor(RedactionConfig(fields=["dob"]))
    data = {
        "user": {"dob": "1990-01-01", "Password": "hunter2", "name": "Pat"},
        "notes": [f"card {CARD}"],
    }
    assert redactor.value(data) == {
        "user": {"dob": "[REDACTED:dob]", "Password": "[REDACTED:password]", "name": "Pat"},
        "notes": ["card [REDACTED:card_number]"],
    }


def test_json_strings_are_redacted_structurally() -> None:
    text = json.dumps({"api_key": "plain-looking", "body": f"pay {CARD}"})
    redacted = json.loads(Redactor().value(text))
    assert redacted == {"api_key": "[REDACTED:api_key]", "body": "pay [REDACTED:card_number]"}


def test_bad_pattern_is_a_clear_config_error() -> None:
    with pytest.raises(ValidationError, match="'broken' is not a valid regular expression"):
        RedactionConfig(patterns={"broken": "(unclosed"})


def test_a_call_in_one_line_is_masked_sorted_and_bounded() -> None:
    line = Redactor().line({"to": "pat@example.com", "body": f"card {CARD}", "n": 3})
    assert line == "body=card [REDACTED:card_number], n=3, to=[REDACTED:email]"
    long = Redactor().line({"text": "x" * 500}, limit=40)
    assert len(long) == 40
    assert long.endswith("…")


def test_an_approver_sees_where_an_email_goes_but_not_who() -> None:
    approver = Redactor(partial_emails=True)
    assert approver.text("to pat@customers.example.com") == "to p…@customers.example.com"
    assert approver.text(f"card {CARD}") == "card [REDACTED:card_number]"
    assert Redactor().text("to pat@customers.example.com") == "to [REDACTED:email]"


def test_configured_patterns_and_fields_reach_previews_without_a_builtin_kind() -> None:
    redactor = Redactor(RedactionConfig(patterns={"ticket_pin": r"PIN-\d{4}"}, fields=["dob"]))
    shown = redactor.value({"note": "PIN-1234", "dateOfBirth": "x", "dob": "1990-01-01"})
    assert shown == {"note": "[REDACTED:ticket_pin]", "dateOfBirth": "x", "dob": "[REDACTED:dob]"}
    assert redactor.kinds_in({"body": "4111\t1111\t1111\t1111"}) == ["card_number"]
