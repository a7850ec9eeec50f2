"""Issue #24, item 4: `tiergate policy what-if` re-decides recorded tool calls offline.

The demo's runs and the eval suite's are recorded on the session's server; a candidate
policy set is tried against their histories, and the flips it reports are exactly the ones
this test predicts from the runs' own summaries (a second record of the same runs).
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.conftest import Harness
from tests.test_cli import tiergate
from tests.test_evals import SUITE
from tests.test_session_policies import EXAMPLES, long_session_run
from tiergate.approvals import trusting_dev_admin
from tiergate.core import LOAD_AGENT_ACTIVITY, RunSummary, ToolCallProposal
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore, register_demo_approvers, run_scenarios
from tiergate.evals import load_suite, run_suite
from tiergate.forensics import (
    CandidateFor,
    candidate_policies,
    fetch_run_chain,
    load_history_file,
    read_history,
    what_if,
)
from tiergate.settings import Settings
from tiergate.worker import build_worker

DEMO_POLICIES = Path(__file__).parent.parent / "src" / "tiergate" / "demo" / "policies"

#: The candidate: the demo's policies and three changes, one of them reading the session.
CHANGES = """
@id("small_refunds_only")
forbid(principal, action == Action::"payments.issue_refund", resource)
when { context.input.amount_usd.greaterThan(decimal("20.00")) };

@id("status_before_refund")
forbid(principal, action == Action::"payments.issue_refund", resource)
unless {
  context.session.seen["orders.get_status"]["order_id"].contains(context.input.order_id)
};

@id("one_status_check_per_order")
forbid(principal, action == Action::"orders.get_status", resource)
when { context.session.seen["orders.get_status"]["order_id"].contains(context.input.order_id) };

@id("ticket_updates_need_a_person")
@approval("human")
permit(principal, action == Action::"crm.update_ticket", resource);
"""

#: Codes by which the gate itself refuses a call; any other decision let it through.
GATE_DENIALS = {
    "policy_forbid",
    "no_permit",
    "unknown_tool",
    "not_in_allowlist",
    "invalid_arguments",
    "policy_error",
    "output_blocked",
}

Predicted = set[tuple[str, int, str, tuple[str, ...]]]


@dataclass
class Recorded:
    folder: Path
    summaries: list[RunSummary]
    demo_queue: str
    server: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def recorded(
    env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Recorded]:
    home = tmp_path_factory.mktemp("what-if")
    settings = trusting_dev_admin(Settings(home=home, offline_model_overrides=True))
    SupportStore(settings.support_store).seed_demo()
    registry = register_demo_approvers(settings)
    client = env.client
    queue = f"what-if-{home.name}"
    async with build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=queue):
        summaries = await run_scenarios(client, queue, registry)
    suite = await run_suite(load_suite(SUITE), client, settings, SUPPORT_TOOLKIT, concurrency=8)
    folder = home / "histories"
    folder.mkdir()
    ids = [s.workflow_id for s in summaries] + [case.workflow_id for case in suite.cases]
    everything = []
    for workflow_id in ids:
        for n, history in enumerate(await fetch_run_chain(client, workflow_id)):
            (folder / f"{workflow_id}.{n}.json").write_text(history.to_json())
            view = read_history(history)
            if view.summary is not None:
                everything.append(view.summary)
    yield Recorded(folder, everything, queue, client.service_client.config.target_host)


def candidate(tmp_path: Path, changes: str = CHANGES) -> Path:
    folder = tmp_path / "candidate"
    folder.mkdir()
    shutil.copy(DEMO_POLICIES / "support.cedar", folder)
    (folder / "changes.cedar").write_text(changes)
    return folder


def predicted(summaries: list[RunSummary]) -> Predicted:
    """The flips CHANGES must make, read from the summaries' step records."""
    flips: Predicted = set()
    for summary in summaries:
        checked: set[str] = set()
        for step in summary.steps:
            decision, proposal = step.decision, step.proposal
            if not isinstance(proposal, ToolCallProposal) or decision is None:
                continue
            through = decision.code not in GATE_DENIALS
            arguments = decision.arguments or {}
            if proposal.tool == "payments.issue_refund" and through:
                ids = []
                if Decimal(str(arguments["amount_usd"])) > Decimal(20):
                    ids.append("small_refunds_only")
                if arguments["order_id"] not in checked:
                    ids.append("status_before_refund")
                if ids:
                    flips.add((summary.workflow_id, step.step, "allow_to_deny", tuple(ids)))
            if proposal.tool == "crm.update_ticket" and through:
                flips.add(
                    (
                        summary.workflow_id,
                        step.step,
                        "tier_raised",
                        ("ticket_updates_need_a_person",),
                    )
                )
            if proposal.tool == "orders.get_status" and through:
                if arguments["order_id"] in checked:
                    flips.add(
                        (
                            summary.workflow_id,
                            step.step,
                            "allow_to_deny",
                            ("one_status_check_per_order",),
                        )
                    )
                if step.tool_result and step.tool_result.ok:
                    checked.add(arguments["order_id"])
    return flips


def found(flips: list[dict[str, Any]]) -> Predicted:
    return {
        (f["workflow_id"], f["step"], f["flip"]["kind"], tuple(f["flip"]["policy_ids"]))
        for f in flips
    }


def tool_calls(summaries: list[RunSummary]) -> int:
    return sum(isinstance(s.proposal, ToolCallProposal) for r in summaries for s in r.steps)


async def what_if_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    code, out = await tiergate("policy", "what-if", *args, "--json", env=env)
    assert code in (0, 1), out
    return code, dict(json.loads(out[out.index("{") :]))


async def test_the_flips_are_exactly_those_predicted_over_the_demo_and_the_eval_suite(
    recorded: Recorded, tmp_path: Path
) -> None:
    expected = predicted(recorded.summaries)
    kinds = {kind for _, _, kind, _ in expected}
    assert kinds == {"allow_to_deny", "tier_raised"}  # the prediction has something to miss
    assert any(ids == ("one_status_check_per_order",) for *_, ids in expected)

    code, report = await what_if_cli("--policies", str(candidate(tmp_path)), str(recorded.folder))
    assert code == 1  # nothing accepted
    assert found(report["flips"]) == expected
    assert report["unreproduced"] == []
    assert report["decisions"] == tool_calls(recorded.summaries)
    assert report["runs"] == len(list(recorded.folder.glob("*.json")))


async def test_accepted_flips_pass_and_any_other_fails(recorded: Recorded, tmp_path: Path) -> None:
    policies = str(candidate(tmp_path))
    listed = tmp_path / "accepted.txt"
    listed.write_text(
        "# the refund changes are wanted\nsmall_refunds_only\n"
        "status_before_refund=allow_to_deny  # a status check before every refund\n"
        "one_status_check_per_order\n"
    )
    args = ("--policies", policies, "--accept-file", str(listed), str(recorded.folder))
    code, report = await what_if_cli(*args, "--accept", "ticket_updates_need_a_person=tier_raised")
    assert code == 0
    assert report["unaccepted"] == []
    assert report["flips"]

    code, report = await what_if_cli(*args, "--accept", "ticket_updates_need_a_person=tier_lowered")
    assert code == 1
    assert {f["flip"]["kind"] for f in report["unaccepted"]} == {"tier_raised"}
    assert len(report["unaccepted"]) == sum(
        f["flip"]["kind"] == "tier_raised" for f in report["flips"]
    )


async def test_runs_are_selected_on_the_server_with_a_query(
    recorded: Recorded, tmp_path: Path
) -> None:
    demo = [s for s in recorded.summaries if s.workflow_id.startswith("demo-")]
    code, report = await what_if_cli(
        "--policies",
        str(candidate(tmp_path)),
        "--query",
        f'TaskQueue = "{recorded.demo_queue}"',
        env={"TIERGATE_TEMPORAL_ADDRESS": recorded.server},
    )
    assert code == 1
    assert found(report["flips"]) == predicted(demo)
    assert report["runs"] == len(demo)


async def test_the_same_policies_flip_nothing(recorded: Recorded, tmp_path: Path) -> None:
    code, report = await what_if_cli(
        "--policies", str(candidate(tmp_path, "")), str(recorded.folder)
    )
    assert (code, report["flips"], report["unreproduced"]) == (0, [], [])


async def test_bad_input_is_named_and_exits_2(recorded: Recorded, tmp_path: Path) -> None:
    policies = candidate(tmp_path)
    folder = str(recorded.folder)
    code, out = await tiergate(
        "policy", "what-if", "--policies", str(policies), "--accept", "x=sideways", folder
    )
    assert code == 2
    assert "'sideways' is not a kind of flip" in out
    code, out = await tiergate("policy", "what-if", "--policies", str(tmp_path / "nowhere"), folder)
    assert code == 2
    assert "no such folder of candidate policies" in out
    (policies / "changes.cedar").write_text(
        '@id("typo")\nforbid(principal, action == Action::"payments.refund", resource);\n'
    )
    code, out = await tiergate("policy", "what-if", "--policies", str(policies), folder)
    assert code == 2
    assert "changes.cedar" in out
    assert "changes.cedar:1: does not validate" in out
    assert "Traceback" not in out


async def test_an_edited_history_is_not_reproduced(recorded: Recorded, tmp_path: Path) -> None:
    """A history whose pinned policies were edited after the fact decides differently from
    what its marks recorded: reported, and the what-if fails."""
    source = recorded.folder / sorted(p.name for p in recorded.folder.glob("demo-T-1001-*"))[0]
    data = json.loads(source.read_text())
    for event in data["events"]:
        done = event.get("activityTaskCompletedEventAttributes")
        if done is None:
            continue
        payload = done["result"]["payloads"][0]
        bundle = json.loads(base64.b64decode(payload["data"]))
        if "policy" in bundle and "config" in bundle:
            bundle["policy"]["text"] = bundle["policy"]["text"].replace(
                'permit(principal, action == Action::"payments.issue_refund", resource);',
                'forbid(principal, action == Action::"payments.issue_refund", resource);',
            )
            payload["data"] = base64.b64encode(json.dumps(bundle).encode()).decode()
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    view = read_history(load_history_file(edited))
    assert view.named(LOAD_AGENT_ACTIVITY)
    code, report = await what_if_cli("--policies", str(candidate(tmp_path, "")), str(edited))
    assert code == 1
    # Against the edited pin, the real policies "flip" the refund: which is why it fails.
    assert [(f["step"], f["flip"]["kind"]) for f in report["flips"]] == [(3, "deny_to_allow")]
    assert len(report["unreproduced"]) == 1
    assert "step 3: the run recorded allow (allowed)" in report["unreproduced"][0]


async def test_a_long_run_is_re_decided_segment_by_segment(
    harness: Harness, tmp_path: Path
) -> None:
    """The status check of the first segment, carried into a later one, is what lets the
    later refund through; dropping the policy flips only the refund it denied."""
    h = harness
    summary = await long_session_run(h)
    assert summary.previous_run_ids
    views = [read_history(x) for x in await fetch_run_chain(h.env.client, summary.workflow_id)]
    assert len(views) > 1

    def candidate_for(text: str) -> CandidateFor:
        folder = tmp_path / f"c{len(text)}"
        folder.mkdir()
        shutil.copy(DEMO_POLICIES / "support.cedar", folder)
        (folder / "session.cedar").write_text(text)
        return candidate_policies(folder)

    same = what_if(views, candidate_for(EXAMPLES.read_text()))
    assert (same.flips, same.unreproduced) == ([], [])
    assert same.decisions == 11

    without = EXAMPLES.read_text().split('@id("refunds_over_300_need_a_person")')[1]
    dropped = what_if(views, candidate_for('@id("refunds_over_300_need_a_person")' + without))
    assert [(f.step, f.flip.kind, f.flip.policy_ids) for f in dropped.flips] == [
        (10, "deny_to_allow", ["status_before_refund"])
    ]


ONLY_COUNTS = (Path(__file__).parent / "policies" / "counts" / "session_counts.cedar").read_text()


async def test_runs_recorded_before_session_context_can_try_session_policies(
    tmp_path: Path,
) -> None:
    """The checked-in recordings were pinned with a schema that has no `context.session`:
    a candidate reading it is validated against the schema today's code makes from their
    pinned tools (which declare no session fields, so only the counts are there)."""
    histories = Path(__file__).parent / "histories"
    views = [read_history(load_history_file(p)) for p in sorted(histories.glob("*.json"))]
    assert "Session" not in views[0].pinned_bundle().policy.schema_text
    expected: Predicted = set()
    for summary in (v.summary for v in views):
        assert summary is not None
        checks = 0
        for step in summary.steps:
            if isinstance(step.proposal, ToolCallProposal) and step.decision is not None:
                through = step.decision.code not in GATE_DENIALS
                if step.proposal.tool == "orders.get_status" and through and checks:
                    expected.add(
                        (summary.workflow_id, step.step, "allow_to_deny", ("one_status_check",))
                    )
                if (
                    step.proposal.tool == "orders.get_status"
                    and step.tool_result
                    and step.tool_result.ok
                ):
                    checks += 1
    assert expected

    code, report = await what_if_cli(
        "--policies", str(candidate(tmp_path, ONLY_COUNTS)), str(histories)
    )
    assert code == 1
    assert found(report["flips"]) == expected
    assert report["unreproduced"] == []
    assert report["decisions"] == 23

    (tmp_path / "candidate" / "changes.cedar").write_text(EXAMPLES.read_text())
    code, out = await tiergate(
        "policy", "what-if", "--policies", str(tmp_path / "candidate"), str(histories)
    )
    assert code == 2
    assert 'session.seen["orders.get_status"]` in context' in out
