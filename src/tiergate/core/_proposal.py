"""Turn a provider's raw output into a typed proposal, or a recorded reason why not."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from tiergate.core._names import MULTIPLE_TOOL_CALLS
from tiergate.core._records import InvalidProposal, Proposal

_PROPOSAL = TypeAdapter(Proposal)
#: Canonical arguments larger than this are refused: tool inputs are small by design.
MAX_ARGUMENTS_BYTES = 16_000


def parse_proposal(
    raw: dict[str, Any] | str, raw_size: int, max_chars: int
) -> Proposal | InvalidProposal:
    """Validate raw model output. Never raises: bad output becomes an InvalidProposal."""
    excerpt = (raw if isinstance(raw, str) else json.dumps(raw, default=str))[:500]
    if raw_size > max_chars:
        return InvalidProposal(
            code="too_large",
            message=f"model output is {raw_size} chars; limit {max_chars}",
            excerpt=excerpt,
        )
    data: Any = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            return InvalidProposal(code="not_json", message=f"not JSON: {error}", excerpt=excerpt)
    if isinstance(data, dict) and data.get("kind") == MULTIPLE_TOOL_CALLS:
        return InvalidProposal(
            code=MULTIPLE_TOOL_CALLS,
            message=f"the model proposed {data.get('count')} tool calls in one answer; "
            "propose one per step, each is gated on its own",
            excerpt=excerpt,
        )
    try:
        proposal = _PROPOSAL.validate_python(data)
    except ValidationError as error:
        return InvalidProposal(code="schema", message=_describe(error), excerpt=excerpt)
    size = len(json.dumps(getattr(proposal, "arguments", {}), default=str))
    if size > MAX_ARGUMENTS_BYTES:
        return InvalidProposal(
            code="too_large",
            message=f"arguments are {size} bytes; limit {MAX_ARGUMENTS_BYTES}",
            excerpt=excerpt,
        )
    return proposal


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "proposal"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
