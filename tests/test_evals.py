"""Evals as the deployment gate: the suite format, the runner, compare and history."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Harness
from tests.test_cli import tiergate
from tiergate.config import PACKAGED_AGENTS
from tiergate.core import Outcome, RunSummary
from tiergate.demo import SUPPORT_FIXTURE, SUPPORT_TOOLKIT, SupportDesk, SupportStore
from tiergate.evals import EvalError, Observed, judge, load_suite, run_suite

SUITE = Path(__file__).parent.parent / "evals" / "support_refund.yaml"


def test_the_shipped_suite_covers_the_issue() -> None:
    suite = load_suite(SUITE)
    assert len(suite.cases) >= 30
    tags = {tag for case in suite.cases for tag in case.tags}
    assert {"routine", "partial", "ambiguous", "stale", "approval", "dual", "adversarial"} <= tags
    assert {c.model.source for c in suite.cases} == {"demo", "scripted", "cassette"}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def suite_with(case: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"suite": "s", "version": "1", "agent": "support_refund_agent", "cases": [case], **top}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            {"id": "a", "input": {}, "expect": {"no_refund_please": True}},
            "case a, field expect.no_refund_please: unknown check or field 'no_refund_please'",
        ),
        (
            {
                "id": "b",
                "input": {},
                "expect": {
                    "final_state": {
                        "support": {"refunds": [{"order_id": "ORD-0", "amount_usd": "1.00"}]}
                    }
                },
            },
            "case b, field expect.final_state.support: expects a refund for order ORD-0",
        ),
        (
            {
                "id": "c",
                "input": {},
                "expect": {
                    "final_state": {
                        "support": {"refunds": [{"order_id": "ORD-5001", "amount_usd": "99.00"}]}
                    }
                },
            },
            "whose total is $35.00",
        ),
        (
            {
                "id": "d",
                "input": {},
                "expect": {"final_state": {"support": {"tickets": {"T-0": "resolved"}}}},
            },
            "case d, field expect.final_state.support: expects a status for ticket T-0",
        ),
        (
            {
                "id": "d2",
                "input": {},
                "expect": {
                    "final_state": {
                        "support": {"refunds": [{"order_id": "ORD-5001", "amount_usd": "9"}]}
                    }
                },
            },
            "write refund amounts as the store does, with cents: '9.00'",
        ),
        (
            {"id": "d3", "input": {}, "fixtures": {"support": {"tickets": [{"id": "T-1"}]}}},
            "case d3, field fixtures.support: tickets.0.body: Field required",
        ),
        (
            {"id": "d4", "input": {}, "fixtures": {"acme": {}}},
            "case d4, field fixtures.acme: toolset 'acme' has no fixture",
        ),
        (
            {"id": "e", "input": {}, "model": {"source": "cassette", "cassette": "missing.yaml"}},
            "case e, field model.cassette: cassette missing.yaml not found",
        ),
        (
            {"id": "f", "input": {}, "approvals": [{"approver": "nobody"}]},
            "case f, field approvals: approver 'nobody' is not in the suite's `approvers`",
        ),
        (
            {"id": "g", "input": {}, "expect": {"outcome": "great"}},
            "case g, field expect.outcome",
        ),
    ],
)
def test_bad_suites_are_refused_before_anything_runs(
    tmp_path: Path, case: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, suite_with(case))
    with pytest.raises(EvalError) as error:
        load_suite(path, SUPPORT_TOOLKIT.fixtures)
    assert f"suite {path}" in str(error.value)
    assert message in str(error.value)


def test_judge_names_the_failed_layer_and_check() -> None:
    suite = load_suite(SUITE)
    case = suite.case("refund-damaged-35")
    summary = RunSummary(workflow_id="w", run_id="r", agent="a", outcome=Outcome.DENIED, reason="x")
    left = {"support": {"refunds": [], "tickets": {"T-1001": "open"}, "emails_sent": 0}}
    failures = judge(case, Observed(summary=summary, final_state=left))
    assert failures == [
        "behavior.outcome: denied (x); expected completed",
        "outcome.final_state: support.refunds is []; expected "
        "[{'order_id': 'ORD-5001', 'amount_usd': '35.00', 'reason_code': 'damaged'}]",
        "outcome.final_state: support.tickets is {'T-1001': 'open'}; expected "
        "{'T-1001': 'resolved'}",
    ]


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def server(h: Harness) -> list[str]:
    return ["--server", h.env.client.service_client.config.target_host]


async def eval_run(h: Harness, out: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    env = {"TIERGATE_HOME": str(h.home)}
    code, text = await tiergate(
        "eval",
        "run",
        str(SUITE),
        "--concurrency",
        "8",
        "--json",
        str(out),
        *server(h),
        *args,
        env=env,
    )
    return code, text, read_json(out)


async def test_the_suite_gates_a_policy_change_that_skips_approval(
    harness: Harness, tmp_path: Path
) -> None:
    code, text, baseline = await eval_run(harness, tmp_path / "baseline.json")
    assert code == 0, text
    assert baseline["pass_rate"] == 1.0
    assert "suite passed" in text

    # A candidate whose refund cap lets a $400 refund through with no human.
    loose = tmp_path / "support_refund_agent_loose.yaml"
    loose.write_text(
        (PACKAGED_AGENTS / "support_refund_agent.yaml")
        .read_text()
        .replace('condition: "input.amount_usd <= 50"', 'condition: "input.amount_usd <= 5000"')
        .replace('version: "1.0.0"', 'version: "1.1.0-loose"')
    )
    code, text, loosened = await eval_run(
        harness, tmp_path / "loose.json", "--agent-version", str(loose)
    )
    assert code == 1, text
    assert "suite failed: pass_rate" in text
    failed = {c["id"]: c["failures"] for c in loosened["cases"] if not c["passed"]}
    assert "refund-400-approved" in failed
    assert any("behavior.approvals" in f for f in failed["refund-400-approved"])
    assert loosened["agent_version"] == "1.1.0-loose"

    env = {"TIERGATE_HOME": str(harness.home)}
    code, text = await tiergate(
        "eval", "compare", str(tmp_path / "baseline.json"), str(tmp_path / "loose.json"), env=env
    )
    assert code == 1, text
    assert "refund-400-approved" in text
    assert "regression" in text

    plot = tmp_path / "trend.png"
    code, text = await tiergate("eval", "history", "support_refund", "--plot", str(plot), env=env)
    assert code == 0, text
    assert "1.1.0-loose" in text
    assert "100.0%" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_eval_cli_bad_input(tmp_path: Path) -> None:
    path = write(tmp_path, suite_with({"id": "a", "input": {}, "expect": {"nope": 1}}))
    code, text = await tiergate("eval", "run", str(path))
    assert code == 2
    assert "unknown check or field 'nope'" in text
    assert "Traceback" not in text


async def test_each_case_runs_on_a_store_of_its_own_dropped_once_judged(harness: Harness) -> None:
    h = harness
    suite = load_suite(SUITE, SUPPORT_TOOLKIT.fixtures)
    picked = suite.model_copy(
        update={"cases": [suite.case("refund-damaged-35"), suite.case("refund-wrong-item-20")]}
    )
    seen: list[Path] = []
    setup = SUPPORT_TOOLKIT.fixtures["support"].setup

    def remember(run_id: str, state: dict[str, Any]) -> None:
        setup(run_id, state)
        store = SupportDesk.case(run_id)
        assert store is not None
        assert store.path is not None
        seen.append(store.path)

    spying = dataclasses.replace(SUPPORT_FIXTURE, setup=remember)
    toolkit = dataclasses.replace(SUPPORT_TOOLKIT, fixtures={"support": spying})
    result = await run_suite(picked, h.env.client, h.settings, toolkit, concurrency=2)
    assert [c.passed for c in result.cases] == [True, True], result.cases
    assert len(set(seen)) == 2
    for case in result.cases:
        assert SupportDesk.case(case.workflow_id) is None
    assert not any(path.exists() for path in seen)
    # The worker's own store was never touched by a case.
    assert SupportStore(h.settings.support_store).rows("refunds") == []
