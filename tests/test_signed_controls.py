"""Issue #20, item 3: kill-switch commands are signed by an operator and checked by the run.

Anyone with namespace access can send the `control` signal; before this, an attacker could
lift an incident's pause with `resume` and name anyone as `by`. Now a run obeys only a
command an operator it pinned signed for its own execution, fresh and new to it, and
records what it ignored and why.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from tests.conftest import Harness, call, final, scripted
from tests.test_approval import KEYS, registry
from tiergate.approvals.client import decide
from tiergate.cli._controls import signed_for
from tiergate.core import (
    CONTROL_SIGNAL,
    CONTROLS_MEMO,
    ApprovalDecision,
    ControlCommand,
    RunStatus,
    RunSummary,
)
from tiergate.core._controls import refusal_of

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
EXECUTION = ("run-1", "run-1-first")
OPERATORS = registry()  # test keys: "lead" and "fin" stand in for operators here
PAUSE = ControlCommand(action="pause", by="lead", reason="incident 7")


def signed(**changes: Any) -> ControlCommand:
    command = signed_for(PAUSE, KEYS["lead"], *EXECUTION)
    return command.model_copy(update={"expires_at": NOW + timedelta(minutes=5), **changes})


def resigned(command: ControlCommand, signer: str = "lead") -> ControlCommand:
    """``command`` signed exactly as it stands."""
    unsigned = command.model_copy(update={"signature": ""})
    signature = base64.b64encode(KEYS[signer].sign(unsigned.signing_message())).decode()
    return unsigned.model_copy(update={"signature": signature})


class TestRefusalOf:
    def test_a_signed_fresh_command_for_this_execution_is_obeyed(self) -> None:
        command = resigned(signed())
        assert refusal_of(command, OPERATORS, EXECUTION, set(), NOW) is None

    def test_everything_else_is_ignored_with_the_reason(self) -> None:
        good = resigned(signed())
        cases = {
            "unsigned": good.model_copy(update={"signature": ""}),
            "self-asserted by": good.model_copy(update={"by": "fin"}),
            "unknown operator": good.model_copy(update={"by": "mallory"}),
            "revoked operator": resigned(good.model_copy(update={"by": "gone"}), "gone"),
            "another run": resigned(good.model_copy(update={"run_id": "run-2"})),
            "reused workflow id": resigned(good.model_copy(update={"first_run_id": "old"})),
            "expired": resigned(good.model_copy(update={"expires_at": NOW - timedelta(1)})),
            "century": resigned(good.model_copy(update={"expires_at": NOW + timedelta(9999)})),
            "changed after signing": good.model_copy(update={"action": "resume"}),
        }
        for name, command in cases.items():
            assert refusal_of(command, OPERATORS, EXECUTION, set(), NOW) is not None, name

    def test_a_command_heard_once_is_not_obeyed_again(self) -> None:
        command = resigned(signed())
        assert refusal_of(command, OPERATORS, EXECUTION, {command.command_id}, NOW) == (
            "a command id this run has already heard"
        )


REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)


async def status_of(handle: WorkflowHandle[Any, RunSummary]) -> RunStatus:
    status: RunStatus = await handle.query("status", result_type=RunStatus)
    return status


async def test_an_unsigned_resume_does_not_lift_a_pause(harness: Harness) -> None:
    h = harness
    h.registry.add("lead", ["support_lead"], demo_key=True)
    agent = h.add_agent("a")
    async with h.worker():
        handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
        await h.pending(handle)
        await h.control(handle.id, "pause")
        await decide(h.env.client, h.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok")
        # What any namespace client can send: a plain resume, claiming to be the operator.
        await handle.signal(
            CONTROL_SIGNAL, ControlCommand(action="resume", by="oncall", reason="all clear")
        )
        # A signed command copied from another run's history.
        other = signed_for(
            ControlCommand(action="resume", by="oncall"),
            h.operators.private_key("oncall"),
            f"other-{uuid.uuid4()}",
            "first",
        )
        await handle.signal(CONTROL_SIGNAL, other)
        await asyncio.sleep(0.5)
        assert (await status_of(handle)).state == "paused"
        assert h.store.rows("refunds") == []
        memo = (await handle.describe()).memo
        controls = (await memo())[CONTROLS_MEMO]
        assert [i["why"] for i in controls["ignored"]] == [
            "the signature does not verify with "
            + h.operators.snapshot().approvers["oncall"].key_id,
            f"signed for execution {other.run_id}/first",
        ]
        await h.control(handle.id, "resume")
        summary = await handle.result()
    assert summary.outcome.value == "completed"
    assert len(h.store.rows("refunds")) == 1
