"""The demo's scenarios: eight support tickets, what each should end as, and its approvers.

Approvals go through the same signed path as `tiergate approvals approve`: demo approvers are
registered in the demo's own registry and sign with their own keys, which the demo keeps on
this machine as the demo's (a real approver keeps theirs on their own machine).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from tiergate.approvals import ApproverRegistry, dev_admin
from tiergate.approvals.client import decide, pending_of
from tiergate.core import WORKFLOW_NAME, ApprovalDecision, Outcome, RunInput, RunSummary
from tiergate.errors import NotWaitingError
from tiergate.settings import Settings

DEMO_AGENT = "support_refund_agent"
DEMO_APPROVERS = {
    "demo-lead": ["support_lead"],
    "demo-privacy-1": ["privacy_officer"],
    "demo-privacy-2": ["privacy_officer"],
}


@dataclass(frozen=True)
class Scenario:
    ticket: str
    story: str
    expected: Outcome
    agent: str = DEMO_AGENT
    approvers: tuple[str, ...] = field(default=())


SCENARIOS = [
    Scenario("T-1001", "small refund ($35)", Outcome.COMPLETED),
    Scenario(
        "T-1002", "large refund ($400): one approval", Outcome.COMPLETED, approvers=("demo-lead",)
    ),
    Scenario("T-1003", "forbidden refund ($2500)", Outcome.DENIED),
    Scenario("T-1004", "prompt injection in the ticket", Outcome.DENIED),
    Scenario("T-1005", "ambiguous status -> budget shrinks, run escalates", Outcome.ESCALATED),
    Scenario(
        "T-1006",
        "data deletion: dual control",
        Outcome.COMPLETED,
        approvers=("demo-privacy-1", "demo-privacy-2"),
    ),
    Scenario("T-1007", "card number in the ticket", Outcome.ESCALATED),
    Scenario(
        "T-1008",
        "refund ($120) nobody approves: expires",
        Outcome.ESCALATED,
        agent="support_refund_agent_quick_sla",
    ),
]


#: What `tiergate demo --keep` leaves waiting for the approvals page.
WAITING_SCENARIO = SCENARIOS[1]


def scenario_input(scenario: Scenario) -> dict[str, Any]:
    """The run input (as the workflow takes it) of ``scenario``."""
    run = RunInput(agent=scenario.agent, input={"ticket_id": scenario.ticket}, requester="demo")
    return run.model_dump()


def register_demo_approvers(settings: Settings) -> ApproverRegistry:
    """A fresh registry with the demo approvers, each with their own key pair (labelled
    demo: made and kept on this host), endorsed by the home's dev administrator — which
    ``settings`` must trust (`trusting_dev_admin`) for the workers to take them."""
    registry = ApproverRegistry.of(settings)
    registry.clear()
    shutil.rmtree(settings.home / "keys", ignore_errors=True)
    dev_admin(settings.home)
    for name, roles in DEMO_APPROVERS.items():
        registry.add(name, roles, demo_key=True)
    return registry


async def approve_when_waiting(
    client: Client, registry: ApproverRegistry, run_id: str, approvers: tuple[str, ...]
) -> None:
    for approver in approvers:
        for _ in range(300):
            try:
                await pending_of(client, run_id)
                break
            except NotWaitingError:
                await asyncio.sleep(0.1)
        await decide(
            client,
            registry,
            run_id,
            approver,
            ApprovalDecision.APPROVE,
            justification=f"checked by {approver} in the demo",
            via="demo",
        )


async def run_scenarios(
    client: Client,
    task_queue: str,
    registry: ApproverRegistry | None = None,
    batch: str | None = None,
) -> list[RunSummary]:
    """Start every scenario at once, answer the approvals, and wait for all summaries."""
    batch = batch or uuid.uuid4().hex[:8]
    handles = [
        await client.start_workflow(
            WORKFLOW_NAME,
            scenario_input(s),
            id=f"demo-{s.ticket}-{batch}",
            task_queue=task_queue,
            result_type=RunSummary,
        )
        for s in SCENARIOS
    ]
    if registry is not None:
        await asyncio.gather(
            *(
                approve_when_waiting(client, registry, h.id, s.approvers)
                for s, h in zip(SCENARIOS, handles, strict=True)
                if s.approvers
            )
        )
    return list(await asyncio.gather(*(h.result() for h in handles)))
