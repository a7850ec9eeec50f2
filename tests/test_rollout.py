"""Rollouts: canary routing by share and key, shadow mode without writes, promote, rollback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from tests.conftest import Harness
from tests.test_cli import tiergate
from tiergate.config import PACKAGED_AGENTS
from tiergate.core import RunInput, RunSummary
from tiergate.rollout import (
    Criteria,
    Rollout,
    RolloutStore,
    VersionFigures,
    judge,
    route,
    start_run,
)
from tiergate.state import open_database
from tiergate.workflows import AGENT_VERSION_ATTRIBUTE

AGENT = "support_refund_agent"


def test_canary_routes_its_share_and_sticks_to_the_key() -> None:
    rollout = Rollout(agent=AGENT, primary="1.0.0", candidate="2.0.0", mode="canary", share=0.25)
    routed = [route(rollout, {"customer_id": f"C-{i}"}, f"w-{i}") for i in range(2000)]
    share = sum(v == "2.0.0" for v, _ in routed) / len(routed)
    assert abs(share - 0.25) < 0.03
    again = [route(rollout, {"customer_id": f"C-{i}"}, "other-id")[0] for i in range(2000)]
    assert again == [v for v, _ in routed]
    _, why = route(rollout, {}, "w-1")
    assert "no customer_id in the input, by run id w-1" in why.reason
    assert route(None, {"customer_id": "C-1"}, "w")[1].reason.startswith("no rollout")
    shadowing = rollout.model_copy(update={"mode": "shadow"})
    assert route(shadowing, {"customer_id": "C-1"}, "w")[0] == "1.0.0"


def test_promotion_criteria_compare_the_candidate_with_the_primary() -> None:
    primary = VersionFigures(
        version="1",
        finished=50,
        success_rate=0.9,
        cost_per_completed_task=0.010,
        violations_per_run=0.1,
        escalation_rate=0.1,
    )
    good = primary.model_copy(
        update={"version": "2", "finished": 30, "cost_per_completed_task": 0.0105}
    )
    assert all(v.ok for v in judge(Criteria(), primary, good))
    costly = good.model_copy(update={"cost_per_completed_task": 0.02, "violations_per_run": 0.2})
    failed = {v.name for v in judge(Criteria(), primary, costly) if not v.ok}
    assert failed == {"cost_per_task", "policy_violations"}
    few = good.model_copy(update={"finished": 3})
    assert {v.name for v in judge(Criteria(), primary, few) if not v.ok} == {"min_runs"}


def candidate_file(h: Harness, name: str = AGENT) -> None:
    """Version 2.0.0 of agent ``name`` beside 1.0.0 (written too unless it is the packaged one)."""
    folder = h.home / "agents"
    folder.mkdir(exist_ok=True)
    text = (
        (PACKAGED_AGENTS / f"{AGENT}.yaml").read_text().replace(f"name: {AGENT}", f"name: {name}")
    )
    if name != AGENT:
        (folder / f"{name}.yaml").write_text(text)
    (folder / f"{name}_v2.yaml").write_text(text.replace('version: "1.0.0"', 'version: "2.0.0"'))


def env(h: Harness) -> dict[str, str]:
    return {
        "TIERGATE_TEMPORAL_ADDRESS": h.env.client.service_client.config.target_host,
        "TIERGATE_HOME": str(h.home),
        "TIERGATE_AGENTS_DIR": str(h.home / "agents"),
    }


async def cli(h: Harness, *args: str) -> str:
    code, out = await tiergate("rollout", *args, env=env(h))
    assert code == 0, out
    return out


async def versions_of(h: Harness, inputs: list[dict[str, Any]]) -> list[str]:
    """Starts a run per input and reads the version its load activity routed it to (the
    runs are terminated once routed: routing is all we look at)."""

    async def routed(handle: WorkflowHandle[Any, RunSummary]) -> str:
        async with asyncio.timeout(60):
            while True:
                described = await handle.describe()
                if version := described.typed_search_attributes.get(AGENT_VERSION_ATTRIBUTE):
                    await handle.terminate("routing test")
                    return version
                await asyncio.sleep(0.05)

    versions: list[str] = []
    async with h.worker():
        # In batches, so 2 cores are not asked to start 200 runs at once.
        for first in range(0, len(inputs), 25):
            handles = [
                await start_run(
                    h.env.client,
                    h.settings,
                    RunInput(agent=AGENT, input=data),
                    f"route-{uuid.uuid4().hex[:10]}",
                    task_queue=h.task_queue,
                )
                for data in inputs[first : first + 25]
            ]
            versions += await asyncio.gather(*(routed(handle) for handle in handles))
    return versions


async def test_canary_share_over_200_runs_then_rollback_and_promote(harness: Harness) -> None:
    candidate_file(harness)
    await cli(
        harness,
        "start",
        AGENT,
        "--candidate",
        "2.0.0",
        "--primary",
        "1.0.0",
        "--mode",
        "canary",
        "--share",
        "0.25",
    )
    customers = [{"customer_id": f"C-{i}", "ticket_id": "T-1001"} for i in range(200)]
    versions = await versions_of(harness, customers)
    counts = Counter(versions)
    assert set(counts) == {"1.0.0", "2.0.0"}
    assert 35 <= counts["2.0.0"] <= 65, counts  # 25% of 200 = 50, within about 2 sigma
    # Sticky: the same customers land the same way again.
    assert await versions_of(harness, customers[:20]) == versions[:20]

    await cli(harness, "rollback", AGENT)
    assert set(await versions_of(harness, customers[:30])) == {"1.0.0"}

    await cli(
        harness,
        "start",
        AGENT,
        "--candidate",
        "2.0.0",
        "--primary",
        "1.0.0",
        "--mode",
        "canary",
        "--share",
        "0.5",
    )
    out = await cli(harness, "promote", AGENT, "--force")
    assert "2.0.0 is now the primary (was 1.0.0)" in out
    assert set(await versions_of(harness, customers[:30])) == {"2.0.0"}
    state = RolloutStore(harness.settings.database()).get(AGENT)
    assert state is not None
    assert [e.action for e in state.events] == ["start", "rollback", "start", "promote"]


async def test_unforced_promotion_needs_the_criteria(harness: Harness) -> None:
    candidate_file(harness)
    await cli(
        harness,
        "start",
        AGENT,
        "--candidate",
        "2.0.0",
        "--primary",
        "1.0.0",
        "--mode",
        "canary",
        "--share",
        "0.5",
    )
    code, out = await tiergate("rollout", "promote", AGENT, env=env(harness))
    assert code == 2, out
    assert "promotion criteria not met (" in out


async def test_runs_record_the_version_and_why(harness: Harness) -> None:
    candidate_file(harness)
    await cli(
        harness,
        "start",
        AGENT,
        "--candidate",
        "2.0.0",
        "--primary",
        "1.0.0",
        "--mode",
        "canary",
        "--share",
        "1.0",
    )
    async with harness.worker():
        handle = await start_run(
            harness.env.client,
            harness.settings,
            RunInput(agent=AGENT, input={"ticket_id": "T-1001", "customer_id": "C-1"}),
            f"routed-{uuid.uuid4().hex[:8]}",
            task_queue=harness.task_queue,
        )
        summary = await handle.result()
    assert summary.versions is not None
    assert summary.versions.agent_version == "2.0.0"
    assert summary.routing is not None
    assert summary.routing.variant == "canary"
    assert summary.routing.reason.startswith("canary: customer_id=C-1 -> bucket")


async def test_shadow_mode_compares_without_writing(harness: Harness) -> None:
    agent = f"shadowed_{uuid.uuid4().hex[:6]}"  # its own agent: the session server is shared
    candidate_file(harness, agent)
    await cli(
        harness, "start", agent, "--candidate", "2.0.0", "--primary", "1.0.0", "--mode", "shadow"
    )
    async with harness.worker():
        for ticket in ("T-1001", "T-1003"):
            handle = await start_run(
                harness.env.client,
                harness.settings,
                RunInput(agent=agent, input={"ticket_id": ticket}),
                f"live-{uuid.uuid4().hex[:8]}",
                task_queue=harness.task_queue,
            )
            await handle.result()
    effects = {t: harness.store.rows(t) for t in ("refunds", "tickets", "emails", "users")}
    assert len(effects["refunds"]) == 1
    status = json.loads(await cli(harness, "status", agent, "--json"))
    shadow = status["shadow"]
    assert shadow["runs"] == 2
    assert shadow["same_outcome"] == 2
    assert shadow["simulated_writes"] == 2  # the refund and the ticket update of T-1001
    assert {t: harness.store.rows(t) for t in effects} == effects
    assert status["primary"]["finished"] == 2
    assert status["primary"]["version"] == "1.0.0"


async def test_several_versions_without_a_rollout_is_a_clear_error(harness: Harness) -> None:
    candidate_file(harness)
    code, out = await tiergate(
        "run", "start", AGENT, "--input", '{"ticket_id": "T-1001"}', env=env(harness)
    )
    assert code == 2
    assert "has several versions (2.0.0, 1.0.0) and no rollout says which is the primary" in out


def test_rollout_state_is_kept_per_agent(tmp_path: Path) -> None:
    store = RolloutStore(open_database(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    store.put(Rollout(agent="a", primary="1"))
    store.put(Rollout(agent="b", primary="7", candidate="8", mode="canary", share=0.1))
    assert store.get("a") == Rollout(agent="a", primary="1")
    assert store.get("b") is not None
    assert store.get("c") is None
