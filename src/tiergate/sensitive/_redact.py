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
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiergate.sensitive._detect import find

PiiKind = Literal["card_number", "email", "iban", "phone", "secret", "ssn"]
_ALL_KINDS: list[PiiKind] = ["card_number", "email", "iban", "phone", "secret", "ssn"]

#: Field names whose values are masked whole, whatever they contain. A field matches a rule
#: when its name, split at case changes, dashes and underscores, ends with the rule's
#: (`Redactor.secret_field`).
DEFAULT_SECRET_FIELDS = (
    "api_key",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "passwd",
    "private_key",
    "pin",
    "password",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "card_number",
    "cvv",
    "cvc",
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

    def __init__(
        self, config: RedactionConfig | None = None, *, partial_emails: bool = False
    ) -> None:
        self.config = config or RedactionConfig()
        # For an approver, who must see where an email goes: `p…@customers.example.com`.
        self.partial_emails = partial_emails

    @cached_property
    def _kinds(self) -> frozenset[str]:
        return frozenset(self.config.kinds)

    @cached_property
    def _patterns(self) -> list[tuple[re.Pattern[str], str]]:
        return [(re.compile(p), _mask(name)) for name, p in self.config.patterns.items()]

    @cached_property
    def _fields(self) -> frozenset[str]:
        return frozenset(field_key(f) for f in (*DEFAULT_SECRET_FIELDS, *self.config.fields))

    def text(self, text: str) -> str:
        """``text`` with every configured kind and pattern masked."""
        pieces, position = [], 0
        for finding in find(text):
            if finding.kind not in self._kinds or finding.end <= position:
                continue
            # Findings of two kinds may overlap (an email beside a phone): mask their union.
            start = max(finding.start, position)
            if start > position:
                pieces.append(text[position:start])
            written = text[finding.start : finding.end]
            pieces.append(self._masked(finding.kind, written) if start == finding.start else "")
            position = finding.end
        text = "".join(pieces) + text[position:] if pieces else text
        for pattern, mask in self._patterns:
            text = pattern.sub(mask, text)
        return text

    def _masked(self, kind: str, written: str) -> str:
        if kind == "email" and self.partial_emails and "@" in written:
            local, domain = written.rsplit("@", 1)
            return f"{local[:1]}…@{domain}"
        return _mask(kind)

    def secret_field(self, field: str) -> bool:
        """Whether values under ``field`` are masked whole: its name, split at case changes,
        dashes and underscores, ends with a rule's (``user_password``, ``cardNumber``,
        ``x-api-key``, ``session_token``)."""
        tokens = _name_tokens(field)
        return any("".join(tokens[i:]) in self._fields for i in range(len(tokens)))

    def line(self, arguments: dict[str, Any], limit: int = 120) -> str:
        """``name=value, ...`` of ``arguments``, masked and cut to ``limit`` characters: a
        call shown in one line (an approval queue's row)."""
        shown = self.value(arguments)
        text = ", ".join(f"{name}={shown[name]}" for name in sorted(shown))
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def kinds_in(self, value: Any) -> list[str]:
        """The kinds found in every string of ``value`` (as written, not JSON-escaped: a
        tab between a card's groups is a tab), sorted. Field rules mask a value but do not
        make it a finding: a ``next_page_token`` is masked, not a reason to withhold a page."""
        kinds: set[str] = set()
        self._collect(value, kinds)
        return sorted(kinds)

    def _collect(self, value: Any, kinds: set[str]) -> None:
        if isinstance(value, str):
            kinds.update(f.kind for f in find(value) if f.kind in self._kinds)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._collect(str(key), kinds)
                self._collect(item, kinds)
        elif isinstance(value, list | tuple):
            for item in value:
                self._collect(item, kinds)

    def value(self, value: Any, field: str | None = None) -> Any:
        """A copy of ``value`` (str, dict, list, scalars) with sensitive parts masked.

        A value under a sensitive field name is masked whole. A string that holds a JSON
        object or list is redacted structurally, so field rules reach inside it too.
        """
        if field is not None and value not in (None, "") and self.secret_field(field):
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


_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _name_tokens(name: str) -> list[str]:
    return [t.lower() for t in _CAMEL.findall(name)]


def field_key(name: str) -> str:
    """A field rule's name as matched: its tokens joined (``api_key``, ``apiKey`` and
    ``api-key`` are one rule)."""
    return "".join(_name_tokens(name))


DEFAULT_REDACTOR = Redactor()
