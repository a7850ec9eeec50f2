"""Sensitive data in text: every finding with its kind and span, one detector for all sinks.

The same findings decide the `output.contains_pii` rule and what the redaction layer masks,
so "the gate saw it" and "the log hid it" agree. Kinds: ``card_number`` (Luhn-checked),
``ssn`` (US, invalid ranges excluded), ``iban`` (ISO 13616 checksum), ``phone`` (Google's
libphonenumber port, any region with ``+``, US numbers without), ``email`` and ``secret``
(API keys and tokens by their published formats, JWTs, ``Bearer`` credentials, PEM private
keys, passwords in URLs).

Text is normalized first (`_normalize`): NFKC, every Unicode space to a space, every
decimal digit to ASCII, zero-width characters dropped, so ``４１１１``, ``pat＠example.com``
and thin-space groups are what they look like. Spans are of the original text.

Pure, deterministic and linear in the text: every pattern is anchored or possessive, so a
hostile megabyte (``eyJeyJ…``, ``sk-sk-…``) costs one pass. We do not run detect-secrets'
own regular expressions at run time for that reason (its JWT pattern takes about a second
on 60 kB of ``eyJ``, quadratic); tests/test_pii_corpus.py checks that it finds nothing in
the corpus we miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum.us import ssn as stdnum_ssn

from tiergate.sensitive._normalize import normalize

KINDS: Final = ("card_number", "email", "iban", "phone", "secret", "ssn")


@dataclass(frozen=True, order=True)
class Finding:
    """One piece of sensitive data: its kind and where it is (``text[start:end]``)."""

    start: int
    end: int
    kind: str


# The lookbehind tries a local part only from the start of its run (linear on `xxxx…@`).
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A run of digits joined by up to two separators (spaces, tabs, newlines, dots, slashes,
# dashes, underscores): a card is written in groups, not always with spaces.
_DIGIT_RUN = re.compile(r"[0-9](?:[ \t\r\n./_-]{0,2}+[0-9])*+")
_GROUP = re.compile(r"[0-9]++")
# Card layouts a long run is searched for (Visa/Mastercard 4-4-4-4, 19 digits 4-4-4-4-3,
# Amex 4-6-5, Diners 4-6-4), when the whole run is longer than a card.
_LAYOUTS = ((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4))
# Not inside a longer dashed code (`SKU 400-12-0041-A`).
_SSN = re.compile(r"(?<![0-9-])([0-9]{3})([ -])([0-9]{2})\2([0-9]{4})(?![0-9-])")
_SSN_NAMED = re.compile(
    r"(?i:\bssn\b|social security(?: number| no\.?)?)[^0-9\n]{0,12}+([0-9]{9})(?![0-9])"
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}+")
# Each secret format with the literal it cannot appear without: a pattern runs only over a
# text holding its literal, so the ordinary text (holding none) costs a few substring
# searches instead of every alternative tried at every position.
_SECRET_RULES: Final = (
    # OpenAI, Anthropic and similar `sk-` keys; Stripe live and restricted keys.
    (("sk-",), r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16}[A-Za-z0-9_-]*+"),
    (("k_live_", "k_test_"), r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16}[0-9A-Za-z]*+"),
    # AWS access key ids, and secret keys where they are named.
    (
        ("A3T", "ABIA", "ACCA", "AKIA", "ASIA"),
        r"\b(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}\b",
    ),
    (
        ("aws",),
        r"(?i:aws.{0,20}?(?:secret|key|pwd|pw|password|pass|token).{0,20}?)"
        r"[0-9A-Za-z/+]{40}(?![0-9A-Za-z/+])",
    ),
    # GitHub tokens (classic and fine-grained), GitLab, Slack, SendGrid, npm, PyPI, Azure.
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{30}[A-Za-z0-9_]*+",
    ),
    (("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{22}[A-Za-z0-9_]*+"),
    (("gl",), r"\bgl(?:pat|dt|ft|soat|rt|cbt)-[A-Za-z0-9_-]{20}[A-Za-z0-9_-]*+"),
    (("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10}[A-Za-z0-9-]*+"),
    (
        ("hooks.slack.com",),
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]++/B[A-Za-z0-9_]++/[A-Za-z0-9_]++",
    ),
    (("SG.",), r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"),
    (("npm_",), r"\bnpm_[A-Za-z0-9]{36}"),
    (("pypi-",), r"\bpypi-AgE[A-Za-z0-9_-]{70}[A-Za-z0-9_-]*+"),
    (("AccountKey=",), r"\bAccountKey=[A-Za-z0-9+/=]{88}"),
    # JWTs: three base64url parts, the first a JSON header.
    (("eyJ",), r"\beyJ[A-Za-z0-9_-]{8}[A-Za-z0-9_-]*+\.[A-Za-z0-9_-]++\.[A-Za-z0-9_-]*+"),
    # An Authorization credential, whatever its format.
    (("bearer",), r"(?i:\bbearer)[ \t]++[A-Za-z0-9._~+/-]{16}[A-Za-z0-9._~+/-]*+=*+"),
    (("basic",), r"(?i:\bbasic)[ \t]++[A-Za-z0-9+/]{12}[A-Za-z0-9+/]*+=*+"),
    # A password in a URL: scheme://user:password@host.
    (("://",), r"(?<=://)[^\s:/@]{1,64}:[^\s/@]{1,128}@"),
)
_SECRETS: Final = [
    (triggers, re.compile(pattern), triggers[0].islower()) for triggers, pattern in _SECRET_RULES
]
#: Any rule's literal, lowered: a text holding none (most text) skips every rule at once,
#: one pass of one expression instead of a substring search per literal.
_ANY_TRIGGER: Final = re.compile(
    "|".join(re.escape(t.lower()) for triggers, _ in _SECRET_RULES for t in triggers)
)
#: Text without a digit, an `@` or a private key's header: what cards, SSNs, IBANs, phones,
#: emails and private keys each cannot be written without.
_NOTHING_TO_FIND: Final = re.compile(r"(?s)(?!.*PRIVATE KEY)[^0-9@]*")
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_MAX = 16_384  # longer than any private key block; bounds the search for its end
_PHONE_STRETCH = re.compile(r"[+(]?[0-9](?:[ ().\-/\t]{0,3}+[0-9])*+\)?")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def luhn_valid(digits: str) -> bool:
    """True for digit strings passing the Luhn checksum used by payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find(text: str) -> list[Finding]:
    """Every finding in ``text``, sorted by position: overlapping findings of one kind
    merged, one inside another of another kind dropped, and a number already found as
    another kind (or inside a secret) not also a phone."""
    norm = normalize(text)
    if _NOTHING_TO_FIND.fullmatch(norm.text) and not _ANY_TRIGGER.search(norm.text.lower()):
        return []  # no digit, no `@`, no secret's literal: no detector could match
    found: list[Finding] = []
    found += _cards(norm.text)
    found += _ssns(norm.text)
    found += _ibans(norm.text)
    found += _secrets(norm.text)
    found += _emails(norm.text)
    # Phones are looked for with every other number blanked out (same length, so spans
    # hold): a card's or an SSN's digits are not read as, or glued to, a phone number.
    found += _phones(_blanked(norm.text, [f for f in found if f.kind != "email"]))
    return _merged([Finding(*norm.original(f.start, f.end), f.kind) for f in found])


def pii_kinds(text: str) -> list[str]:
    """The kinds of sensitive data in ``text``, sorted; empty when clean."""
    return sorted({finding.kind for finding in find(text)})


def card_numbers(text: str) -> list[str]:
    """The Luhn-valid card numbers in ``text``, as written."""
    return [text[f.start : f.end] for f in find(text) if f.kind == "card_number"]


def _cards(text: str) -> list[Finding]:
    found = []
    for run in _DIGIT_RUN.finditer(text):
        groups = list(_GROUP.finditer(run.group()))
        digits = sum(g.end() - g.start() for g in groups)
        if 13 <= digits <= 19:
            if luhn_valid("".join(g.group() for g in groups)):
                found.append(Finding(run.start(), run.end(), "card_number"))
            continue
        if digits < 13 or len(groups) < 3:
            continue
        # Longer than a card: a card written in its groups inside other numbers.
        lengths = [g.end() - g.start() for g in groups]
        for first in range(len(groups)):
            for layout in _LAYOUTS:
                window = lengths[first : first + len(layout)]
                if tuple(window) != layout:
                    continue
                last = groups[first + len(layout) - 1]
                number = "".join(g.group() for g in groups[first : first + len(layout)])
                if luhn_valid(number):
                    found.append(
                        Finding(
                            run.start() + groups[first].start(),
                            run.start() + last.end(),
                            "card_number",
                        )
                    )
    return found


def _ssns(text: str) -> list[Finding]:
    found = []
    for match in _SSN.finditer(text):
        if stdnum_ssn.is_valid(match.group(1) + match.group(3) + match.group(4)):
            found.append(Finding(match.start(), match.end(), "ssn"))
    lowered = text.lower()
    if "ssn" not in lowered and "social security" not in lowered:
        return found
    for match in _SSN_NAMED.finditer(text):
        if stdnum_ssn.is_valid(match.group(1)):
            found.append(Finding(match.start(1), match.end(1), "ssn"))
    return found


def _ibans(text: str) -> list[Finding]:
    found = []
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The pattern may run into the next word: try each shorter end at a group break.
        ends = [len(candidate)] + [
            i for i in range(len(candidate) - 1, 14, -1) if candidate[i] == " "
        ]
        for end in ends:
            if stdnum_iban.is_valid(candidate[:end]):
                found.append(Finding(match.start(), match.start() + end, "iban"))
                break
    return found


def _emails(text: str) -> list[Finding]:
    found = []
    for match in EMAIL.finditer(text):
        # `scheme://user:password@host` is a URL's user info (a password is a secret), not
        # an address someone is written to.
        before = text[max(0, match.start() - 256) : match.start()]
        if before and not before[-1].isspace() and "://" in before.split()[-1]:
            continue
        found.append(Finding(match.start(), match.end(), "email"))
    return found


def _secrets(text: str) -> list[Finding]:
    lowered = text.lower()
    found = []
    for triggers, pattern, anycase in _SECRETS if _ANY_TRIGGER.search(lowered) else ():
        haystack = lowered if anycase else text
        if any(trigger in haystack for trigger in triggers):
            found += [Finding(m.start(), m.end(), "secret") for m in pattern.finditer(text)]
    for begin in _PEM_BEGIN.finditer(text) if "PRIVATE KEY" in text else ():
        end = _PEM_END.search(text, begin.end(), begin.end() + _PEM_MAX)
        # Without its end line the rest of the block is still the key: mask to the window.
        stop = end.end() if end else min(len(text), begin.end() + _PEM_MAX)
        found.append(Finding(begin.start(), stop, "secret"))
    return found


def _phones(text: str) -> list[Finding]:
    found = []
    # libphonenumber reads only stretches that could hold a number (digits, `+`, brackets,
    # spaces, dots, dashes, slashes): the rest of the text, most of it, costs one regular
    # expression pass instead of the matcher's own scan.
    for stretch in _PHONE_STRETCH.finditer(text):
        # Ten digits, or a `+` country code: what the filter below keeps anyway, known
        # before building a matcher (dates and order numbers stop here).
        if "+" not in stretch.group() and sum(c.isdigit() for c in stretch.group()) < 10:
            continue
        offset = stretch.start()
        # POSSIBLE, not VALID: `555-123-4567` is not an assigned US number but is written
        # as one, and an output rule must treat it as a phone number.
        matcher = phonenumbers.PhoneNumberMatcher(
            stretch.group(), "US", leniency=phonenumbers.Leniency.POSSIBLE, max_tries=1 << 30
        )
        for match in matcher:
            start, end = offset + match.start, offset + match.end
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            raw = match.raw_string
            if before.isalnum() or after.isalnum():
                continue  # a digit run inside an id or tracking number (`1Z999AA10123456784`)
            if _IPV4.fullmatch(raw) or (sum(c.isdigit() for c in raw) < 10 and raw[:1] != "+"):
                continue  # an address, or too short to be a number someone dials from afar
            found.append(Finding(start, end, "phone"))
    return found


def _blanked(text: str, found: list[Finding]) -> str:
    if not found:
        return text
    pieces, position = [], 0
    for finding in sorted(found):
        start = max(finding.start, position)
        pieces += [text[position:start], " " * max(0, finding.end - start)]
        position = max(position, finding.end)
    return "".join(pieces) + text[position:]


def _merged(found: list[Finding]) -> list[Finding]:
    """Overlapping findings of one kind as one; a finding inside another of another kind
    (a card's digits inside an IBAN, a number inside a token) dropped."""
    # One sweep by start (widest first), so a hostile text of many findings stays linear.
    kept: list[Finding] = []
    reach: Finding | None = None  # the finding reaching furthest so far
    for finding in sorted(found, key=lambda f: (f.start, -f.end)):
        if reach is not None and finding.end <= reach.end and finding.kind != reach.kind:
            continue
        kept.append(finding)
        if reach is None or finding.end > reach.end:
            reach = finding
    merged: list[Finding] = []
    for finding in sorted(kept):
        last = merged[-1] if merged else None
        if last is not None and last.kind == finding.kind and finding.start <= last.end:
            merged[-1] = Finding(last.start, max(last.end, finding.end), last.kind)
        else:
            merged.append(finding)
    return merged
