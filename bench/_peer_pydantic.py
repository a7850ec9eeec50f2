"""The peers benchmark's Pydantic AI agent, made durable with its Temporal integration
(`TemporalDurability`: each model request and each tool call an activity)."""

from __future__ import annotations

import os

from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # The store is the tools' (run in activities), not the workflow's: not re-imported.
    from _peer_tools import get_status, read_ticket

#: The model server's base URL and the system prompt, set before the worker imports this.
BASE_URL_ENV = "TIERGATE_PEERS_MODEL_URL"
#: The system prompt: tiergate's default one, so every kind sends the same instructions.
INSTRUCTIONS = os.environ.get("TIERGATE_PEERS_PROMPT", "You act through the tools you are given.")


def crm__read_ticket(ticket_id: str) -> str:
    """Read a support ticket by its id."""
    return read_ticket(ticket_id)


def orders__get_status(order_id: str) -> str:
    """Get an order's shipping and payment status by its id."""
    return get_status(order_id)


model = OpenAIChatModel(
    "bench-model",
    provider=OpenAIProvider(
        base_url=os.environ.get(BASE_URL_ENV, "http://127.0.0.1:1/v1"), api_key="bench"
    ),
)
agent = Agent(
    model,
    name="peers_pydantic",
    instructions=INSTRUCTIONS,
    tools=[crm__read_ticket, orders__get_status],
    capabilities=[TemporalDurability()],
)


@workflow.defn(name="PeersPydanticAI")
class PeersPydanticAI:
    @workflow.run
    async def run(self, task: str) -> str:
        result = await agent.run(task)
        return str(result.output)
