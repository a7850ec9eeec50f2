"""Text as the detector reads it: what a character looks like, not how it is encoded.

NFKC per character (fullwidth ``＠`` and ``４`` become ``@`` and ``4``), every Unicode space
(thin, no-break, ideographic) a plain space, every decimal digit of any script its ASCII
digit, and format characters (zero-width space and joiner, soft hyphen) dropped, so none
of them hides a card number or an email address between its groups. The normalized text
keeps a map back to the original, so findings mask what was written.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Normalized:
    """``text`` normalized; ``starts[i]`` is where its character ``i`` came from (None:
    the text was ASCII and is its own normal form)."""

    text: str
    starts: list[int] | None
    length: int

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that normalized ``[start, end)`` came from."""
        if self.starts is None:
            return start, end
        first = self.starts[start] if start < len(self.starts) else self.length
        last = self.starts[end] if end < len(self.starts) else self.length
        return first, max(last, first + 1)


@lru_cache(maxsize=4096)
def _form(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category == "Zs" or char in "\u2028\u2029":
        return " "
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    return unicodedata.normalize("NFKC", char)


def normalize(text: str) -> Normalized:
    """``text`` as the detector reads it; linear, and free for ASCII text."""
    if text.isascii():
        return Normalized(text, None, len(text))
    pieces: list[str] = []
    starts: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            pieces.append(char)
            starts.append(index)
            continue
        form = _form(char)
        pieces.append(form)
        starts.extend([index] * len(form))
    return Normalized("".join(pieces), starts, len(text))
