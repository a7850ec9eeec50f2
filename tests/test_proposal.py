"""Raw model output becomes a typed proposal or a recorded reason; parsing never raises."""

from __future__ import annotations

from typing import Any

from tiergate.core import (
    EscalateProposal,
    FinalAnswerProposal,
    InvalidProposal,
    ToolCallProposal,
    parse_proposal,
)


def parse(raw: dict[str, Any] | str, size: int | None = None) -> object:
    text = raw if isinstance(raw, str) else str(raw)
    return parse_proposal(raw, size or len(text), 32_000)


def test_each_kind() -> None:
    assert isinstance(
        parse({"kind": "tool_call", "tool": "a.b", "arguments": {}}), ToolCallProposal
    )
    assert isinstance(parse('{"kind": "final_answer", "answer": "ok"}'), FinalAnswerProposal)
    assert isinstance(parse({"kind": "escalate", "reason": "unsure"}), EscalateProposal)


def test_invalid_outputs_carry_a_code_and_an_excerpt() -> None:
    result = parse("{truncated")
    assert isinstance(result, InvalidProposal)
    assert result.code == "not_json"
    assert result.excerpt == "{truncated"


def test_oversized_arguments_are_refused() -> None:
    result = parse({"kind": "tool_call", "tool": "a.b", "arguments": {"x": "y" * 20_000}})
    assert isinstance(result, InvalidProposal)
    assert result.code == "too_large"


def test_missing_answer_is_a_schema_error() -> None:
    result = parse({"kind": "final_answer"})
    assert isinstance(result, InvalidProposal)
    assert "answer" in result.message
