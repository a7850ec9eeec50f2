"""Start a run from your backend with the plain Temporal SDK: no tiergate import needed.

    python start_run.py INV-1 400        # prints the run's workflow id

The run is the workflow ``AgentRunWorkflow`` on task queue ``tiergate``; its input names
the agent, the task's input and who asked. Here the model is a scripted list (the offline
model `tiergate dev` accepts from run input) that looks the invoice up and proposes the
refund; with a real provider in the agent config, leave ``model_overrides`` out.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


async def main(invoice: str, amount: str) -> None:
    client = await Client.connect(
        os.environ.get("TIERGATE_TEMPORAL_ADDRESS", "localhost:7233"),
        data_converter=pydantic_data_converter,
    )
    script = [
        {
            "kind": "tool_call",
            "tool": "acme.get_invoice",
            "arguments": {"invoice_id": invoice},
            "reason": "look the invoice up",
        },
        {
            "kind": "tool_call",
            "tool": "acme.refund",
            "arguments": {"invoice_id": invoice, "amount_usd": amount},
            "reason": "customer asked",
        },
        {"kind": "final_answer", "answer": f"refunded {amount} on {invoice}", "reason": "done"},
    ]
    handle = await client.start_workflow(
        "AgentRunWorkflow",
        {
            "agent": "acme_billing",
            "input": {"invoice_id": invoice, "amount_usd": amount},
            "requester": "billing-service",
            "model_overrides": {
                "frontier": {"provider": "scripted", "model": "offline-frontier", "script": script}
            },
        },
        id=f"acme-refund-{uuid.uuid4().hex[:8]}",
        task_queue="tiergate",
    )
    print(handle.id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    sys.stdout.flush()
    # A short-lived Temporal client process can abort while the interpreter finalizes
    # ("PyGILState_Release ... finalizing", temporalio/sdk-python#300): the client's Rust
    # threads outlive the event loop. The work is done and printed, so skip the teardown.
    os._exit(0)
