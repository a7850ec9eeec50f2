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

from tiergate.core import APPROVAL_LEVELS, PolicyBundle, PolicySource
from tiergate.errors import PolicyError

KNOWN_ANNOTATIONS = {"id", "approval", "alert", "description"}


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


def _annotations(statement: Statement, source: str) -> dict[str, str]:
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


def build_bundle(sources: list[tuple[str, str]], schema_text: str) -> PolicyBundle:
    """Check and combine ``(name, cedar_text)`` sources into a pinned PolicyBundle."""
    schema = cedarpy.Schema.from_str(schema_text)
    annotations: dict[str, dict[str, str]] = {}
    records = []
    for name, text in sources:
        ids = []
        for statement in split_statements(text):
            found = _annotations(statement, name)
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
    text = "\n".join(f"// --- {name}\n{body.strip()}\n" for name, body in sources)
    # The version hashes content only, so the same policies pin the same version anywhere.
    version = "sha256:" + _sha256("\n".join([schema_text, *(body for _, body in sources)]))
    return PolicyBundle(
        text=text,
        schema_text=schema_text,
        version=version,
        annotations=annotations,
        sources=records,
    )


def read_policy_file(path: Path) -> tuple[str, str]:
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"cannot read policy file: {error.strerror}", file=str(path)) from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
