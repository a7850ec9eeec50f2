"""The peers benchmark's OpenAI Agents SDK agent, made durable with Temporal's plugin
(`temporalio.openai_agents`: each model call an activity, each tool an activity by
`activity_as_tool`)."""

from __future__ import annotations

import os
from datetime import timedelta

from agents import Agent, Runner
from temporalio import activity, workflow
from temporalio.openai_agents import workflow as agents_workflow

with workflow.unsafe.imports_passed_through():
    # The store is the tools' (run in activities), not the workflow's: not re-imported.
    from _peer_tools import get_status, read_ticket

#: The system prompt: tiergate's default one, so every kind sends the same instructions.
INSTRUCTIONS = os.environ.get("TIERGATE_PEERS_PROMPT", "You act through the tools you are given.")
_TOOL_TIMEOUT = timedelta(seconds=30)


@activity.defn
def crm__read_ticket(ticket_id: str) -> str:
    """Read a support ticket by its id."""
    return read_ticket(ticket_id)


@activity.defn
def orders__get_status(order_id: str) -> str:
    """Get an order's shipping and payment status by its id."""
    return get_status(order_id)


@workflow.defn(name="PeersOpenAIAgents")
class PeersOpenAIAgents:
    @workflow.run
    async def run(self, task: str) -> str:
        agent = Agent(
            name="peers_openai",
            instructions=INSTRUCTIONS,
            model="bench-model",
            tools=[
                agents_workflow.activity_as_tool(
                    crm__read_ticket, start_to_close_timeout=_TOOL_TIMEOUT
                ),
                agents_workflow.activity_as_tool(
                    orders__get_status, start_to_close_timeout=_TOOL_TIMEOUT
                ),
            ],
        )
        result = await Runner.run(agent, input=task, max_turns=60)
        return str(result.final_output)
