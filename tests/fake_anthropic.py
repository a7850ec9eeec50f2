"""Replies in Anthropic's Messages protocol, served by the local server of `fake_openai`."""

from __future__ import annotations

from typing import Any

from tests.fake_openai import Reply


def message(
    *content: dict[str, Any],
    stop_reason: str = "end_turn",
    model: str = "claude-test-2026-01-01",
    usage: dict[str, int] | None = None,
) -> Reply:
    return Reply(
        body={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": list(content),
            "stop_reason": stop_reason,
            "usage": usage or {"input_tokens": 100, "output_tokens": 20},
        }
    )


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict[str, Any], use_id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id, "name": name, "input": arguments}
