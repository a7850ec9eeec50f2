"""The first PII detector, kept unchanged so runs whose gate decided with it replay as they ran.

New runs use `tiergate.sensitive._detect`; the run loop picks this one only for histories
recorded before it (`workflow.patched`).

Pure functions over text: no I/O, deterministic, safe to call from workflow code.
"""

from __future__ import annotations

import re

from tiergate.sensitive._detect import luhn_valid  # the same checksum, one copy

# Every pattern here runs over whole tool outputs of any size, so each must stay linear in
# the text: a pattern tried from every position of a long run (`[...]+@` on four megabytes of
# "x", `sk-[...]{16,}\b` on "sk-sk-sk-...") is quadratic and stalls the tool activity for
# hours. Hence the lookbehind that tries a local part only from the start of its run, and
# secret patterns that succeed as soon as the minimum length is seen and then take the rest.
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Boundaries exclude word characters (and hyphens for phones) so ids, digests and UUIDs,
# which contain long digit runs, are not mistaken for card or phone numbers.
_CARD_CANDIDATE = re.compile(r"(?<![\w])(?:\d[ -]?){12,18}\d(?![\w])")
PHONE = re.compile(
    r"(?<![\w-])(?:\+?\d{1,3}[ .-]?\(?\d{3}\)?|\(\d{3}\))[ .-]?\d{3}[ .-]?\d{4}(?![\w-])"
)
SECRET = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16}[A-Za-z0-9_-]*+|AKIA[0-9A-Z]{16}\b|ghp_[A-Za-z0-9]{30}[A-Za-z0-9]*+)"
)


def card_numbers(text: str) -> list[str]:
    """Substrings of ``text`` that are Luhn-valid card numbers (13-19 digits)."""
    found = []
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(match.group())
    return found


def pii_kinds(text: str) -> list[str]:
    """The kinds of personal or secret data found in ``text``, sorted; empty when clean.

    Card numbers count only when they pass Luhn, so order ids and timestamps do not.
    """
    kinds = set()
    if EMAIL.search(text):
        kinds.add("email")
    if card_numbers(text):
        kinds.add("card_number")
    elif PHONE.search(text):
        # A card number also matches the phone pattern; report it once, as a card.
        kinds.add("phone")
    if SECRET.search(text):
        kinds.add("secret")
    return sorted(kinds)
