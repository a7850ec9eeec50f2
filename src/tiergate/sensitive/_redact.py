"""The one redaction layer: what is masked before anything leaves the process.

Logs, exported spans and stored prompt/response records all pass through a `Redactor`, so
a card number in a ticket cannot reach a log pipeline or a tracing backend by a path someone
forgot. Detection of the built-in kinds is `tiergate.pii`'s, the same detector the
`output.contains_pii` policy rule uses, so "the gate saw PII" and "the log hid PII" agree.

Pure and deterministic: no I/O, safe to call from workflow code and from exporter threads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiergate.sensitive._detect import EMAIL, PHONE, SECRET, card_numbers

PiiKind = Literal["card_number", "secret", "email", "phone"]
_ALL_KINDS: list[PiiKind] = ["card_number", "secret", "email", "phone"]

#: Field names whose values are masked whole, whatever they contain (case-insensitive).
DEFAULT_SECRET_FIELDS = (
    "api_key",
    "apikey",
    "authorization",
    "password",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "card_number",
    "cvv",
    "ssn",
)


class RedactionConfig(BaseModel):
    """What to mask. Set through ``TIERGATE_REDACTION`` as JSON, e.g.
    ``{"patterns": {"ticket_pin": "PIN-\\\\d{4}"}, "fields": ["dob"]}``.

    Attributes:
        kinds: Built-in detectors to apply (all four by default).
        patterns: Extra named regular expressions; a match becomes ``[REDACTED:<name>]``.
        fields: Extra field names whose values are masked whole, in addition to
            DEFAULT_SECRET_FIELDS, wherever they appear in structured data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[PiiKind] = Field(default_factory=lambda: list(_ALL_KINDS))
    patterns: dict[str, str] = Field(default_factory=dict)
    fields: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, pattern in patterns.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", name):
                raise ValueError(f"redaction pattern name {name!r}: use letters, digits, _ . -")
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"redaction pattern {name!r} is not a valid regular expression: {error}"
                ) from None
        return patterns


def _mask(kind: str) -> str:
    return f"[REDACTED:{kind}]"


class Redactor:
    """Masks sensitive values in text and in nested JSON-like data."""

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config or RedactionConfig()

    @cached_property
    def _steps(self) -> list[Callable[[str], str]]:
        # Card numbers first: they also match the phone pattern.
        steps: list[Callable[[str], str]] = []
        kinds = set(self.config.kinds)
        if "card_number" in kinds:
            steps.append(_mask_cards)
        for kind, pattern in (("secret", SECRET), ("email", EMAIL), ("phone", PHONE)):
            if kind in kinds:
                steps.append(_sub(pattern, _mask(kind)))
        for name, expression in self.config.patterns.items():
            steps.append(_sub(re.compile(expression), _mask(name)))
        return steps

    @cached_property
    def _fields(self) -> frozenset[str]:
        return frozenset(f.lower() for f in (*DEFAULT_SECRET_FIELDS, *self.config.fields))

    def text(self, text: str) -> str:
        """``text`` with every configured kind and pattern masked."""
        for step in self._steps:
            text = step(text)
        return text

    def line(self, arguments: dict[str, Any], limit: int = 120) -> str:
        """``name=value, ...`` of ``arguments``, masked and cut to ``limit`` characters: a
        call shown in one line (an approval queue's row)."""
        shown = self.value(arguments)
        text = ", ".join(f"{name}={shown[name]}" for name in sorted(shown))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def value(self, value: Any, field: str | None = None) -> Any:
        """A copy of ``value`` (str, dict, list, scalars) with sensitive parts masked.

        A value under a sensitive field name is masked whole. A string that holds a JSON
        object or list is redacted structurally, so field rules reach inside it too.
        """
        if field is not None and field.lower() in self._fields and value not in (None, ""):
            return _mask(field.lower())
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def _string(self, text: str) -> str:
        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                parsed = json.loads(text)
            except ValueError:
                return self.text(text)
            return json.dumps(self.value(parsed), sort_keys=True, default=str)
        return self.text(text)


def _sub(pattern: re.Pattern[str], mask: str) -> Callable[[str], str]:
    return lambda text: pattern.sub(mask, text)


def _mask_cards(text: str) -> str:
    for card in card_numbers(text):
        text = text.replace(card, _mask("card_number"))
    return text


DEFAULT_REDACTOR = Redactor()
