"""`tiergate report`: figures computed from the runs, checked against their summaries."""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.test_cli import tiergate
from tiergate.approvals import trusting_dev_admin
from tiergate.approvals.client import pending_of
from tiergate.cli._report import parse_since
from tiergate.cluster import DevServer, start_dev_server
from tiergate.core import WORKFLOW_NAME, Outcome, RunInput, RunSummary, Verdict
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore, register_demo_approvers, run_scenarios
from tiergate.errors import NotWaitingError
from tiergate.report import Report, percentile, render_html
from tiergate.settings import Settings
from tiergate.worker import build_worker


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    data = [0.3, 0.1, 0.9, 0.4, 0.7, 0.2]
    assert percentile(data, 95) == pytest.approx(
        statistics.quantiles(data, n=100, method="inclusive")[94]
    )


def test_since_accepts_durations_and_timestamps() -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-24T00:00:00", now) == datetime(2026, 11, 24, tzinfo=UTC)
    with pytest.raises(Exception, match="neither a duration nor a timestamp"):
        parse_since("yesterday", now)


class Fleet:
    """A fresh server with the demo's eight runs finished and one run waiting for approval."""

    def __init__(self, server: DevServer, summaries: list[RunSummary], waiting: str) -> None:
        self.server, self.summaries, self.waiting = server, summaries, waiting

    @property
    def env(self) -> dict[str, str]:
        return {"TIERGATE_TEMPORAL_ADDRESS": self.server.address}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fleet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    home = tmp_path_factory.mktemp("fleet")
    settings = trusting_dev_admin(Settings(home=home))
    server = await start_dev_server(None, ui=False)
    client = server.env.client
    task_queue = f"report-{uuid.uuid4().hex[:6]}"
    SupportStore(settings.support_store).seed_demo()
    registry = register_demo_approvers(settings)
    async with build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=task_queue):
        summaries = await run_scenarios(client, task_queue, registry)
        waiting = await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(agent="support_refund_agent", input={"ticket_id": "T-1002"}).model_dump(),
            id=f"waiting-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
        for _ in range(300):
            try:
                await pending_of(client, waiting.id)
                break
            except NotWaitingError:
                await asyncio.sleep(0.05)
    yield Fleet(server, summaries, waiting.id)
    await server.env.shutdown()


async def report_json(fleet: Fleet, *args: str) -> dict[str, Any]:
    code, out = await tiergate("report", "--json", *args, env=fleet.env)
    assert code == 0, out
    return dict(json.loads(out[out.index("{") :]))


def quantile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def test_report_figures_match_the_run_summaries(fleet: Fleet) -> None:
    report = await report_json(fleet, "--since", "1h")
    summaries = fleet.summaries
    completed = [s for s in summaries if s.outcome == Outcome.COMPLETED]

    assert report["runs"] == len(summaries) + 1
    assert (report["finished"], report["running"]) == (len(summaries), 1)
    assert report["outcomes"] == dict(Counter(s.outcome.value for s in summaries))
    assert report["success_rate"] == pytest.approx(len(completed) / len(summaries))
    assert report["cost_usd_total"] == pytest.approx(sum(s.cost_usd for s in summaries))

    costs = [s.cost_usd for s in completed]
    assert report["cost_per_completed_task"]["count"] == len(completed)
    assert report["cost_per_completed_task"]["p50"] == pytest.approx(statistics.median(costs))
    assert report["cost_per_completed_task"]["p95"] == pytest.approx(quantile(costs, 95))
    tokens = [float(s.usage.total_tokens) for s in completed]
    assert report["tokens_per_completed_task"]["mean"] == pytest.approx(statistics.mean(tokens))
    calls = [float(s.usage.tool_calls) for s in summaries]
    assert report["tool_calls_per_task"]["p50"] == pytest.approx(statistics.median(calls))
    latency = [s.wall_time_seconds for s in summaries]
    assert report["latency_seconds"]["p50"] == pytest.approx(statistics.median(latency))
    assert report["latency_seconds"]["p95"] == pytest.approx(quantile(latency, 95))
    assert report["latency_seconds"]["p99"] == pytest.approx(quantile(latency, 99))

    denials: Counter[str] = Counter()
    for s in summaries:
        for step in s.steps:
            d = step.decision
            if d and d.verdict == Verdict.DENY and step.approval is None:
                denials.update(d.policy_ids or [f"({d.code})"])
    assert report["policy_denials"] == dict(denials)
    assert report["policy_denials"]["refund_hard_cap"] == 1
    assert report["blocked_actions"]["pii_redaction"] == 1
    assert report["blocked_actions"]["approval_expired"] == 1
    assert report["budget_stops"] == {}
    # T-1005: its ambiguous status shrank the budgets, then stopped the run (budgets.adaptive).
    assert report["adaptive_stops"] == sum(s.adaptive_stop for s in summaries) == 1
    # ... and T-1007's withheld ticket (an output rule flagged it) counted as ambiguous too.
    shrinks = [
        "-".join(s.workflow_id.split("-")[1:3])
        for s in summaries
        for step in s.steps
        if step.adjustment is not None and step.adjustment.kind == "shrink"
    ]
    assert report["budget_shrinks"] == len(shrinks) == 2
    assert sorted(shrinks) == ["T-1005", "T-1007"]
    approvals = sum(1 for s in summaries for step in s.steps if step.approval is not None)
    assert report["escalations"]["approval_requested"] == approvals
    assert report["escalations"]["run_escalated"] == sum(
        1 for s in summaries if s.outcome == Outcome.ESCALATED
    )

    (pending,) = report["pending_approvals"]
    assert pending["workflow_id"] == fleet.waiting
    assert (pending["tool"], pending["tier"], pending["required"]) == (
        "payments.issue_refund",
        3,
        1,
    )
    assert pending["age_seconds"] >= 0


async def test_report_narrows_to_one_agent(fleet: Fleet) -> None:
    report = await report_json(fleet, "--agent", "support_refund_agent_quick_sla")
    assert report["runs"] == 1
    assert report["outcomes"] == {"escalated": 1}
    assert report["pending_approvals"] == []


async def test_report_terminal_and_html(fleet: Fleet, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, out = await tiergate("report", "--html", str(page), env=fleet.env)
    assert code == 0, out
    assert "success rate" in out
    assert "refund_hard_cap 1" in out
    assert "pending approvals (oldest first)" in out
    html = page.read_text()
    assert html.count("<svg") >= 8
    assert "Cost per completed task (USD)" in html
    assert fleet.waiting in html
    # Self-contained: no scripts, nothing fetched.
    assert "<script" not in html
    assert "src=" not in html
    assert "href=" not in html


def test_html_escapes_what_it_shows() -> None:
    now = datetime.now(UTC)
    report = Report(since=now, until=now, agent="<b>x</b>", policy_denials={"<script>": 1})
    html = render_html(report)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
