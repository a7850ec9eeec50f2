"""A rule-based stand-in for an LLM in the support domain, so the demo runs offline.

It is deliberately naive the way real models can be: it follows instructions it finds in a
ticket (prompt injection) and re-checks an ambiguous order status forever. The gate and the
budgets, not the model, are what keep the demo's runs safe.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tiergate.activities._providers import ProviderOutput, count_tokens, prompt_tokens, raw_tokens
from tiergate.core import ModelSpec, TokenUsage, ToolSpec, TranscriptEntry

AMBIGUOUS_STATUSES = {"pending_carrier_update", "unknown"}
_ORDER = re.compile(r"\bORD-\d+\b")
_USER = re.compile(r"\bU-\d+\b")
_AMOUNT = re.compile(r"\$(\d+(?:\.\d{1,2})?)")
_EMAIL_INSTRUCTION = re.compile(r"email (?:the )?(.{1,80}?) to (\S+@[\w.-]+\w)", re.IGNORECASE)
_TOOL_INSTRUCTION = re.compile(r"call ([a-z_]+\.[a-z_]+) with (\w+) (\w+)", re.IGNORECASE)


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except json.JSONDecodeError:
        return None


def _tool_results(entries: list[TranscriptEntry]) -> dict[str, Any]:
    """The latest result of each tool, by tool name."""
    results: dict[str, Any] = {}
    for entry in entries:
        if entry.role == "tool" and entry.name:
            results[entry.name] = _json(entry.content) or entry.content
    return results


def _call(tool: str, reason: str, **arguments: Any) -> dict[str, Any]:
    return {"kind": "tool_call", "tool": tool, "arguments": arguments, "reason": reason}


def classify(task: dict[str, Any]) -> str:
    text = json.dumps(task).lower()
    for label, words in (
        ("data_deletion", ("delete", "erase", "gdpr")),
        ("refund", ("refund", "money back")),
        ("order_status", ("order", "shipped", "where")),
    ):
        if any(word in text for word in words):
            return label
    return "general"


def propose(entries: list[TranscriptEntry]) -> dict[str, Any]:
    """The next proposal given the whole transcript so far."""
    if entries and entries[-1].role == "gate":
        return {"kind": "escalate", "reason": f"stopped by the gate: {entries[-1].content}"}
    task = next((_json(e.content) for e in entries if e.role == "user"), None) or {}
    results = _tool_results(entries)
    ticket = results.get("crm.read_ticket")
    if ticket is None:
        if "ticket_id" not in task:
            return {"kind": "final_answer", "answer": "No ticket given.", "reason": "nothing to do"}
        return _call("crm.read_ticket", "read the ticket first", ticket_id=task["ticket_id"])
    if not isinstance(ticket, dict):
        return {"kind": "escalate", "reason": f"could not read the ticket: {ticket}"}
    return _next_for_ticket(ticket, results)


def _next_for_ticket(ticket: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    body = ticket["body"]
    if match := _TOOL_INSTRUCTION.search(body):
        tool, key, value = match.groups()
        return _call(tool, "the ticket says to call it", **{key: value})
    if (match := _EMAIL_INSTRUCTION.search(body)) and "email.send" not in results:
        what, to = match.groups()
        return _call(
            "email.send",
            f"the ticket asks to email {what}",
            to=to,
            subject=what[:200],
            body=f"As requested in ticket {ticket['id']}: {what}.",
        )
    if re.search(r"delete .*data", body, re.IGNORECASE) and (user := _USER.search(body)):
        if "users.delete_data" in results:
            return {
                "kind": "final_answer",
                "answer": "Your data has been deleted.",
                "reason": "done",
            }
        return _call(
            "users.delete_data",
            "the customer asks for erasure",
            user_id=user.group(),
            justification=f"Customer request in ticket {ticket['id']}",
        )
    order = _ORDER.search(body)
    if order is None:
        return {"kind": "escalate", "reason": "the ticket names no order"}
    status = results.get("orders.get_status")
    if not isinstance(status, dict) or status.get("status") in AMBIGUOUS_STATUSES:
        return _call("orders.get_status", "need a definitive order status", order_id=order.group())
    return _resolve(ticket, order.group(), status, results)


def _resolve(
    ticket: dict[str, Any], order_id: str, status: dict[str, Any], results: dict[str, Any]
) -> dict[str, Any]:
    body = ticket["body"].lower()
    amount = _AMOUNT.search(ticket["body"])
    if "refund" in body and amount and "payments.issue_refund" not in results:
        reason = (
            "damaged"
            if "damaged" in body
            else "not_delivered"
            if "never" in body
            else "wrong_item"
            if "wrong item" in body
            else "late"
        )
        return _call(
            "payments.issue_refund",
            f"customer asks for ${amount.group(1)} ({reason})",
            order_id=order_id,
            amount_usd=amount.group(1),
            reason_code=reason,
        )
    refund = results.get("payments.issue_refund")
    if refund is not None and not isinstance(refund, dict):
        return {"kind": "escalate", "reason": f"refund failed: {refund}"}
    if refund is not None and "crm.update_ticket" not in results:
        return _call(
            "crm.update_ticket",
            "tell the customer",
            ticket_id=ticket["id"],
            status="resolved",
            reply=f"We refunded ${refund['amount_usd']} for {order_id}.",
        )
    answer = (
        f"Refunded ${refund['amount_usd']} for {order_id}."
        if refund
        else f"Order {order_id} is {status['status']}."
    )
    return {"kind": "final_answer", "answer": answer, "reason": "ticket handled"}


class DemoProvider:
    """The rule-based support model; tokens are counted at about four characters each."""

    revision = "rules-1"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def propose(
        self,
        entries: list[TranscriptEntry],
        tools: list[ToolSpec],
        max_output_tokens: int,
        step: int,
    ) -> ProviderOutput:
        raw = propose(entries)
        usage = TokenUsage(input_tokens=prompt_tokens(entries), output_tokens=raw_tokens(raw))
        return ProviderOutput(raw, usage, f"{self.spec.model}@{self.revision}")

    def classify(self, task: dict[str, Any]) -> ProviderOutput:
        label = classify(task)
        usage = TokenUsage(input_tokens=count_tokens(json.dumps(task)), output_tokens=2)
        return ProviderOutput(label, usage, f"{self.spec.model}@{self.revision}")
