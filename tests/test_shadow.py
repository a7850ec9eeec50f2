"""Shadow re-runs: a finished run re-executed under a candidate, with no side effects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import Harness
from tests.test_cli import tiergate
from tiergate.config import PACKAGED_AGENTS, PACKAGED_POLICIES
from tiergate.core import Outcome
from tiergate.forensics import read_history

STRICT = """
@id("refund_strict_cap")
@description("Candidate policy: no agent refunds more than $20.")
forbid(principal, action == Action::"payments.issue_refund", resource)
when { context.input.amount_usd.greaterThan(decimal("20.00")) };
"""


def env(h: Harness) -> dict[str, str]:
    return {
        "TIERGATE_TEMPORAL_ADDRESS": h.env.client.service_client.config.target_host,
        "TIERGATE_HOME": str(h.home),
        "TIERGATE_AGENTS_DIR": str(h.home / "agents"),
    }


def effects(h: Harness) -> dict[str, Any]:
    return {table: h.store.rows(table) for table in ("refunds", "tickets", "emails")}


async def shadow(h: Harness, *args: str) -> dict[str, Any]:
    code, out = await tiergate("shadow", *args, "--json", env=env(h))
    assert code == 0, out
    return dict(json.loads(out[out.index("{") :]))


async def test_a_stricter_policy_changes_the_decision_and_writes_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    original = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
    assert original.outcome == Outcome.COMPLETED
    before = effects(harness)
    assert len(before["refunds"]) == 1

    policies = tmp_path / "candidate"
    policies.mkdir()
    shutil.copy(PACKAGED_POLICIES / "support.cedar", policies)
    (policies / "strict.cedar").write_text(STRICT)
    result = await shadow(harness, original.workflow_id, "--policies", str(policies))

    (diff,) = result["diffs"]
    assert diff["original_id"] == original.workflow_id
    assert diff["shadow_id"].startswith(f"shadow-{original.workflow_id}")
    assert (diff["original_outcome"], diff["shadow_outcome"]) == ("completed", "denied")
    assert diff["same_outcome"] is False
    refund = next(s for s in diff["steps"] if (s["original"] or "").startswith("payments"))
    assert refund["same_proposal"] is True
    assert refund["original_decision"].startswith("allow")
    assert refund["shadow_decision"] == "deny (policy_forbid, refund_strict_cap)"
    assert diff["changed_decisions"] == 1
    assert diff["new_denials"] == [
        f"step {refund['step']}: {refund['shadow']} -> {refund['shadow_decision']}"
    ]
    assert diff["simulated_writes"] == []  # the refund was denied; nothing else wrote yet
    assert diff["shadow_cost_usd"] <= diff["original_cost_usd"]
    # No write ran: the store is exactly as the original left it.
    assert effects(harness) == before
    shadow_view = read_history(await harness.history(diff["shadow_id"]))
    assert shadow_view.summary is not None
    assert shadow_view.summary.versions is not None
    assert original.versions is not None
    assert shadow_view.summary.versions.policy_version != original.versions.policy_version


async def test_an_unchanged_candidate_reproduces_the_run_with_simulated_writes(
    harness: Harness,
) -> None:
    original = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
    before = effects(harness)
    result = await shadow(harness, original.workflow_id)
    (diff,) = result["diffs"]
    assert diff["same_outcome"] is True
    assert diff["changed_decisions"] == 0
    assert all(s["same_proposal"] for s in diff["steps"])
    assert [w.split(" ")[2] for w in diff["simulated_writes"]] == [
        "payments.issue_refund",
        "crm.update_ticket",
    ]
    assert diff["unrecorded_reads"] == []
    assert diff["token_delta"] == 0
    assert effects(harness) == before


async def test_a_candidate_model_and_prompt_are_used(harness: Harness) -> None:
    original = await harness.run("support_refund_agent", input={"ticket_id": "T-1003"})
    result = await shadow(
        harness, original.workflow_id, "--model", "demo-frontier-2", "--prompt", "Be careful."
    )
    (diff,) = result["diffs"]
    assert diff["candidate"] == {"model": "demo-frontier-2", "prompt": "Be careful."}
    view = read_history(await harness.history(diff["shadow_id"]))
    assert view.summary is not None
    assert view.summary.versions is not None
    assert view.summary.versions.requested_models["frontier"] == "demo-frontier-2"
    assert view.summary.versions.prompt_version.startswith("shadow-")
    assert view.summary.steps[0].model.startswith("demo-frontier-2")


async def test_batch_shadow_summarises(harness: Harness) -> None:
    runs = [
        await harness.run("support_refund_agent", input={"ticket_id": ticket})
        for ticket in ("T-1001", "T-1003")
    ]
    ids = ", ".join(f'"{r.workflow_id}"' for r in runs)
    result = await shadow(harness, "--all", "--query", f"WorkflowId IN ({ids})")
    assert result["summary"]["runs"] == 2
    assert result["summary"]["same_outcome"] == 2
    assert result["summary"]["new_denials"] == 0
    # Shadows are tagged and never picked up as originals themselves.
    again = await shadow(harness, "--all", "--query", f"WorkflowId IN ({ids})")
    assert again["summary"]["runs"] == 2


async def test_shadow_bad_input(harness: Harness) -> None:
    for args, message in (
        (("no-such-run",), "no run with id 'no-such-run'"),
        (("--all", "--query", 'WorkflowId = "nope"'), "matched no finished tiergate runs"),
        ((), "give a RUN_ID, or --all with --query"),
    ):
        code, out = await tiergate("shadow", *args, env=env(harness))
        assert code == 2, out
        assert message in out
        assert "Traceback" not in out


async def test_a_candidate_agent_version_is_loaded_from_a_file(
    harness: Harness, tmp_path: Path
) -> None:
    original = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
    packaged = (PACKAGED_AGENTS / "support_refund_agent.yaml").read_text()
    candidate = tmp_path / "support_refund_agent_v2.yaml"
    candidate.write_text(
        packaged.replace('version: "1.0.0"', 'version: "2.0.0-rc1"').replace(
            "max_tool_calls: 10", "max_tool_calls: 2"
        )
    )
    result = await shadow(harness, original.workflow_id, "--agent-version", str(candidate))
    (diff,) = result["diffs"]
    assert (diff["original_outcome"], diff["shadow_outcome"]) == ("completed", "budget_exhausted")
    view = read_history(await harness.history(diff["shadow_id"]))
    assert view.summary is not None
    assert view.summary.versions is not None
    assert view.summary.versions.agent_version == "2.0.0-rc1"
    assert view.summary.budget_stop is not None
    assert view.summary.budget_stop.limit == "tool_calls"
