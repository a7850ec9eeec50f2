"""Record the demo's histories for the replay tests: `python -m tests.histories.record`.

Files are named by workflow id, `demo-<ticket>-recorded` (replaying needs the id: approvals
are signed for it). Re-record only on purpose: these files are what "yesterday's runs still
replay" means, and a change that stops them replaying must come with a patch, not a new
recording. They were last re-recorded when the project collapsed its record formats into
one (the allow in each tool call's scheduled event), and again when approvals began to sign
the execution and the wait (issue #20: answers of the old format do not replay).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from tiergate.approvals import trusting_dev_admin
from tiergate.cluster import start_dev_server
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore, register_demo_approvers, run_scenarios
from tiergate.settings import Settings
from tiergate.worker import build_worker

HERE = Path(__file__).parent


async def main() -> None:
    server = await start_dev_server(None, ui=False)
    settings = trusting_dev_admin(Settings(home=Path(tempfile.mkdtemp())))
    SupportStore(settings.support_store).seed_demo()
    registry = register_demo_approvers(settings)
    task_queue = f"record-{uuid.uuid4()}"
    try:
        async with build_worker(
            server.env.client, settings, SUPPORT_TOOLKIT, task_queue=task_queue
        ):
            summaries = await run_scenarios(
                server.env.client,
                task_queue,
                registry,
                batch="recorded",
            )
        for summary in summaries:
            history = await server.env.client.get_workflow_handle(
                summary.workflow_id
            ).fetch_history()
            # The file is named by the workflow id: replay needs it (approvals are signed for it).
            (HERE / f"{summary.workflow_id}.json").write_text(history.to_json())
    finally:
        await server.env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
