"""Promoting a log-only policy: the one edit that turns ``@mode("log_only")`` into enforcement.

The policy's text is otherwise left exactly as it was reviewed in log-only mode, so what is
enforced is what was observed. The file's new content is a new policy version: runs pin
their bundle when they start, so only runs started after the change enforce it.
"""

from __future__ import annotations

import re

from tiergate.core import LOG_ONLY
from tiergate.errors import PolicyError
from tiergate.policies._loader import parse_annotations, split_statements

_MODE = re.compile(r'@mode\(\s*"log_only"\s*\)[ \t]*(\r?\n)?')


def promoted(text: str, policy_id: str, source: str) -> str | None:
    """``text`` with ``policy_id``'s ``@mode("log_only")`` removed, or None when no policy
    in ``text`` has that id. A policy that is enforced already is a PolicyError."""
    offset = 0
    for statement in split_statements(text):
        start, offset = offset, offset + len(statement.text)
        notes = parse_annotations(statement, source)
        if notes["id"] != policy_id:
            continue
        if notes.get("mode") != LOG_ONLY:
            raise PolicyError(
                f'{policy_id!r} is enforced already (it has no @mode("log_only"))',
                file=source,
                line=statement.line,
            )
        changed, found = _MODE.subn("", statement.text, count=1)
        if found != 1:
            raise PolicyError(
                f'{policy_id!r}: its mode annotation is not written as @mode("log_only")',
                file=source,
                line=statement.line,
                fix='write it as @mode("log_only") on a line of its own, then promote',
            )
        return text[:start] + changed + text[offset:]
    return None
