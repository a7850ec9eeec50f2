"""Load Cedar policy files: parse, check `@id`s and annotations, validate against the schema.

Errors name the file and line of the offending policy, because "policy3 failed" means nothing
to the person who has to fix it. Every check runs at worker start, so a bad policy refuses
the worker instead of surprising a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from tiergate.core import APPROVAL_LEVELS, LOG_ONLY, POLICY_MODES, PolicyBundle, PolicySource
from tiergate.errors import PolicyError

KNOWN_ANNOTATIONS = {"id", "approval", "alert", "description", "mode"}


@dataclass(frozen=True)
class Statement:
    """One policy's text and the 1-based line it starts on."""

    text: str
    line: int


def split_statements(text: str) -> list[Statement]:
    """Split Cedar text into policies at top-level `;`, skipping strings and comments."""
    statements: list[Statement] = []
    depth, start, line = 0, 0, 1
    start_line: int | None = None
    i, in_string = 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        else:
            if start_line is None and not char.isspace():
                start_line = line
            if char == '"':
                in_string = True
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            elif char == ";" and depth == 0:
                statements.append(Statement(text[start : i + 1], start_line or line))
                start, start_line = i + 1, None
        if char == "\n":
            line += 1
        i += 1
    if start_line is not None:
        statements.append(Statement(text[start:], start_line))
    return statements


def parse_annotations(statement: Statement, source: str) -> dict[str, str]:
    """A policy's annotations, checked: it parses, has an `@id`, and only known annotations
    with known values."""
    try:
        cedarpy.PolicySet.from_str(statement.text)
        est = json.loads(cedarpy.policies_to_json_str(statement.text))
    except ValueError as error:
        raise PolicyError(
            f"does not parse: {error}",
            file=source,
            line=statement.line,
            fix="correct the Cedar syntax (see https://docs.cedarpolicy.com/policies/syntax-policy.html)",
        ) from None
    policies = list(est["staticPolicies"].values()) + list(est["templates"].values())
    annotations: dict[str, str] = policies[0].get("annotations", {})
    unknown = set(annotations) - KNOWN_ANNOTATIONS
    if not annotations.get("id"):
        raise PolicyError(
            "policy has no @id annotation",
            file=source,
            line=statement.line,
            fix='add @id("a_stable_name") so decisions can name the policy that matched',
        )
    if unknown:
        raise PolicyError(
            f"unknown annotations {sorted(unknown)}",
            file=source,
            line=statement.line,
            fix=f"use only {sorted(KNOWN_ANNOTATIONS)}",
        )
    approval = annotations.get("approval")
    if approval is not None and approval not in APPROVAL_LEVELS:
        raise PolicyError(
            f"@approval({approval!r}) is not a known level",
            file=source,
            line=statement.line,
            fix='use @approval("human") (tier 3) or @approval("dual") (tier 4)',
        )
    mode = annotations.get("mode")
    if mode is not None and mode not in POLICY_MODES:
        raise PolicyError(
            f"@mode({mode!r}) is not a known mode",
            file=source,
            line=statement.line,
            fix='use @mode("log_only") (evaluated and recorded, not enforced) or leave it out',
        )
    return annotations


def _validate(statement: Statement, source: str, schema: cedarpy.Schema) -> None:
    result = cedarpy.validate_policies(statement.text, schema)
    if not result.validation_passed:
        reasons = "; ".join(error.error for error in result.errors)
        raise PolicyError(
            f"does not validate against the Cedar schema: {reasons}",
            file=source,
            line=statement.line,
            fix="use the actions and context fields of `tiergate policy schema`",
        )


def build_bundle(
    sources: list[tuple[str, str]], schema_text: str, *, log_only: bool = True
) -> PolicyBundle:
    """Check and combine ``(name, cedar_text)`` sources into a pinned PolicyBundle.

    Policies annotated ``@mode("log_only")`` go to the bundle's ``log_only_text``, the
    others to its ``text``; with ``log_only=False`` (approver policies, which have no
    would-flip record) such a policy is refused.
    """
    schema = cedarpy.Schema.from_str(schema_text)
    annotations: dict[str, dict[str, str]] = {}
    records = []
    enforced: list[tuple[str, str]] = []
    logged: list[tuple[str, str]] = []
    for name, text in sources:
        ids = []
        mine: dict[bool, list[str]] = {True: [], False: []}  # log-only? -> statements
        for statement in split_statements(text):
            found = parse_annotations(statement, name)
            if found.get("mode") == LOG_ONLY and not log_only:
                raise PolicyError(
                    f'@mode("log_only") on {found["id"]!r}: approver policies are always enforced',
                    file=name,
                    line=statement.line,
                    fix="remove the annotation, or try the change offline with `tiergate "
                    "policy what-if`",
                )
            mine[found.get("mode") == LOG_ONLY].append(statement.text)
            if found["id"] in annotations:
                raise PolicyError(
                    f"@id({found['id']!r}) is used twice",
                    file=name,
                    line=statement.line,
                    fix="give every policy a unique @id",
                )
            _validate(statement, name, schema)
            annotations[found["id"]] = found
            ids.append(found["id"])
        records.append(PolicySource(name=name, sha256=_sha256(text), policy_ids=ids))
        enforced.append((name, "".join(mine[False]) if mine[True] else text))
        if mine[True]:
            logged.append((name, "".join(mine[True])))
    # The version hashes content only, so the same policies pin the same version anywhere.
    version = "sha256:" + _sha256("\n".join([schema_text, *(body for _, body in sources)]))
    return PolicyBundle(
        text=_joined(enforced),
        log_only_text=_joined(logged),
        schema_text=schema_text,
        version=version,
        annotations=annotations,
        sources=records,
    )


def _joined(parts: list[tuple[str, str]]) -> str:
    """Policy texts in load order, each under a comment naming its source."""
    return "\n".join(f"// --- {name}\n{body.strip()}\n" for name, body in parts)


def read_policy_file(path: Path) -> tuple[str, str]:
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"cannot read policy file: {error.strerror}", file=str(path)) from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
