"""Running a suite: every case a real governed run, on its own backend state, in parallel.

One worker serves the whole suite. Before each case runs, every fixture of the toolkit sets
up that case's state (what the case names for it, else ``{}``), keyed by the run's workflow
id, which each tool call carries: cases run side by side without seeing each other's writes. Approvals a case lists are
given through the same signed update the CLI uses, by approvers registered for the suite;
a hold nobody answers expires at once. The result of each case is judged by `_checks`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field
from temporalio.client import Client

from tiergate.activities import (
    Answer,
    ContentStore,
    FileContentStore,
    ReRunActivities,
    ReviewStore,
    ToolBackend,
    ToolCallVerifier,
    ToolRunner,
)
from tiergate.approvals import ApproverRegistry, dev_admin
from tiergate.approvals.client import decide, pending_of
from tiergate.config import load_agent
from tiergate.core import (
    WORKFLOW_NAME,
    AgentBundle,
    ApprovalDecision,
    RunInput,
    RunSummary,
    TierApproval,
    ToolCallInput,
    ToolResult,
    ToolSpec,
)
from tiergate.errors import NotWaitingError
from tiergate.evals._checks import Observed, judge
from tiergate.evals._suite import Case, Suite, check_fixtures
from tiergate.forensics import ungated_tool_calls
from tiergate.forensics._candidate import Candidate, candidate_bundle
from tiergate.settings import Settings
from tiergate.state import open_database
from tiergate.worker import Toolkit, edge_worker

_EXPIRE_AT_ONCE = TierApproval(sla_seconds=0.05, expiry_seconds=0.1)
_ANSWER_WINDOW = TierApproval(sla_seconds=2, expiry_seconds=4)


class CaseResult(BaseModel):
    id: str
    passed: bool
    failures: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    workflow_id: str = ""
    outcome: str = ""
    reason: str = ""
    steps: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    tool_calls: int = 0
    seconds: float = 0.0


class SuiteResult(BaseModel):
    """A suite's run: per-case results, the suite's figures, and whether thresholds held."""

    suite: str
    suite_version: str
    agent: str
    agent_version: str
    policy_version: str
    model_ids: list[str]
    candidate: dict[str, str] = Field(default_factory=dict)
    started_at: str
    seconds: float
    concurrency: int
    cases: list[CaseResult]
    pass_rate: float
    cost_per_task_usd: float
    tokens_per_task: float
    tool_calls_per_task: float
    threshold_failures: list[str] = Field(default_factory=list)
    passed: bool


def _overrides(case: Case, bundle: AgentBundle, base: Path) -> dict[str, Any]:
    source = case.model
    executor = bundle.config.model_tier.executor
    pinned = bundle.config.models[executor].model
    if source.source == "scripted":
        return {executor: {"provider": "scripted", "model": pinned, "script": source.script}}
    if source.source == "cassette":
        script = yaml.safe_load((base / (source.cassette or "")).read_text(encoding="utf-8"))
        return {executor: {"provider": "scripted", "model": pinned, "script": script}}
    if source.source == "provider" and source.spec is not None:
        return {executor: source.spec.model_dump()}
    return {}


def _answer_with(runner: ToolRunner, toolkit: Toolkit) -> Answer:
    def answer(spec: ToolSpec, call: ToolCallInput) -> ToolResult:
        tool = toolkit.tools.get(spec.name)
        if tool is None:
            return ToolResult(ok=False, error=f"this worker has no tool {spec.name}")
        return runner.execute(tool, call)

    return answer


async def _answer(client: Client, registry: ApproverRegistry, run_id: str, case: Case) -> None:
    for answer in case.approvals:
        for _ in range(600):
            try:
                await pending_of(client, run_id)
                break
            except NotWaitingError:
                await asyncio.sleep(0.05)
        try:
            await decide(
                client,
                registry,
                run_id,
                answer.approver,
                ApprovalDecision(answer.decision),
                answer.justification,
                via="api",
            )
        except NotWaitingError:
            return  # the run finished without waiting again: the checks will say if wrongly


@dataclass
class _SuiteRun:
    """One run of a suite: its private home, approvers, pinned bundle and re-run edges."""

    suite: Suite
    client: Client
    settings: Settings
    toolkit: Toolkit
    bundle: AgentBundle
    home: Path
    content: ContentStore
    registry: ApproverRegistry
    reruns: ReRunActivities
    backend: ToolBackend
    task_queue: str = field(default_factory=lambda: f"tiergate-eval-{uuid.uuid4().hex[:8]}")
    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def case_bundle(self, case: Case) -> AgentBundle:
        """Holds expire at once when the case gives no answers, and soon after the answers
        when it gives some: a missing second approval ends the case, not the suite."""
        window = _ANSWER_WINDOW if case.approvals else _EXPIRE_AT_ONCE
        config = self.bundle.config
        quick = config.approvals.model_copy(update={"tier3": window, "tier4": window})
        return self.bundle.model_copy(
            update={"config": config.model_copy(update={"approvals": quick})}
        )

    async def prepare(self, case: Case, workflow_id: str) -> AgentBundle:
        """The case's state set up by every fixture, and the run pinned to answer from it."""
        for name, fixture in self.toolkit.fixtures.items():
            await fixture.seed(workflow_id, case.fixtures.get(name, {}))
        bundle = self.case_bundle(case)
        # The case's tool calls are verified as production's are, against the case's bundle.
        verifier = ToolCallVerifier(
            self.client,
            self.task_queue,
            lambda agent, config, policy: (
                bundle
                if (agent, config, policy)
                == (bundle.config.name, bundle.config_hash, bundle.policy.version)
                else None
            ),
            self.toolkit.tools.specs.get,
            lambda: self.registry.trusted(self.settings.registry_admins),
        )
        runner = ToolRunner(self.toolkit.tools, self.backend, self.content, verifier)
        self.reruns.add(workflow_id, bundle, _answer_with(runner, self.toolkit))
        return bundle

    def known_ids(self, case: Case) -> dict[str, set[str]]:
        known: dict[str, set[str]] = {}
        for name, fixture in self.toolkit.fixtures.items():
            if fixture.known_ids is not None:
                for argument, ids in fixture.known_ids(case.fixtures.get(name, {})).items():
                    known.setdefault(argument, set()).update(ids)
        return known

    async def run(self, case: Case) -> CaseResult:
        began = time.perf_counter()
        workflow_id = f"eval-{self.suite.suite}-{case.id}-{self.batch}"
        try:
            summary, seen = await self._observe(case, workflow_id)
        finally:
            for fixture in self.toolkit.fixtures.values():
                await fixture.release(workflow_id)
        return _result(case, workflow_id, summary, judge(case, seen), time.perf_counter() - began)

    async def _observe(self, case: Case, workflow_id: str) -> tuple[RunSummary, Observed]:
        """The case's run, to its end, and what it left behind."""
        bundle = await self.prepare(case, workflow_id)
        run_input = RunInput(
            agent=self.suite.agent,
            input=case.input,
            requester="eval",
            model_overrides=_overrides(case, self.bundle, Path(self.suite.source).parent),
        )
        handle = await self.client.start_workflow(
            WORKFLOW_NAME,
            run_input.model_dump(),
            id=workflow_id,
            task_queue=self.task_queue,
            result_type=RunSummary,
        )
        answering = asyncio.create_task(_answer(self.client, self.registry, workflow_id, case))
        summary = await handle.result()
        answering.cancel()
        return summary, Observed(
            summary=summary,
            ungated=ungated_tool_calls(await handle.fetch_history()),
            known_ids=self.known_ids(case),
            emitted=_emitted(summary, bundle.tools),
            final_state={
                toolset: await self.toolkit.fixtures[toolset].read(workflow_id)
                for toolset in case.expect.final_state
            },
        )


def _result(
    case: Case, workflow_id: str, summary: RunSummary, failures: list[str], seconds: float
) -> CaseResult:
    return CaseResult(
        id=case.id,
        passed=not failures,
        failures=failures,
        tags=case.tags,
        workflow_id=workflow_id,
        outcome=summary.outcome.value,
        reason=summary.reason,
        steps=len(summary.steps),
        cost_usd=summary.cost_usd,
        tokens=summary.usage.total_tokens,
        tool_calls=summary.usage.tool_calls,
        seconds=round(seconds, 3),
    )


def _emitted(summary: RunSummary, tools: dict[str, ToolSpec]) -> list[tuple[str, str]]:
    """What the run's executed calls sent to people: each tool's ``emits`` arguments."""
    sent = []
    for step in summary.steps:
        if step.tool_result is None or not step.tool_result.ok or step.decision is None:
            continue
        tool = step.decision.tool or ""
        spec = tools.get(tool)
        arguments = step.decision.arguments or {}
        for name in spec.emits if spec is not None else ():
            if isinstance(arguments.get(name), str):
                sent.append((f"step {step.step} {tool} {name}", arguments[name]))
    return sent


def _suite_run(
    suite: Suite, client: Client, settings: Settings, toolkit: Toolkit, candidate: Candidate
) -> _SuiteRun:
    home = settings.home / "evals" / f"{suite.suite}-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    # The suite's approvers live in its private home's own store, endorsed by that home's
    # own dev administrator, which only the suite's private worker trusts.
    settings = settings.model_copy(update={"registry_admins": [dev_admin(home)]})
    registry = ApproverRegistry(
        open_database(f"sqlite:///{home / 'state.sqlite'}"),
        home=home,
        admin_key=home / "admin" / "admin.pem",
    )
    for name, roles in suite.approvers.items():
        registry.add(name, roles, demo_key=True)
    check_fixtures(suite, toolkit.fixtures)
    base = load_agent(suite.agent, settings.agents_dir, toolkit.tools.specs)
    bundle = candidate_bundle(
        base, candidate, settings.agents_dir, toolkit.tools.specs, shadow=False
    )
    return _SuiteRun(
        suite=suite,
        client=client,
        settings=settings,
        toolkit=toolkit,
        bundle=bundle,
        home=home,
        content=FileContentStore(home / "content"),
        registry=registry,
        reruns=ReRunActivities(bundle.tools),
        backend=toolkit.backend(settings),
    )


async def run_suite(
    suite: Suite,
    client: Client,
    settings: Settings,
    toolkit: Toolkit,
    *,
    candidate: Candidate | None = None,
    concurrency: int = 4,
    on_case: Callable[[CaseResult], None] | None = None,
) -> SuiteResult:
    """Runs every case of ``suite`` against the server behind ``client``, with ``toolkit``'s
    tools, each case on the state its toolsets' fixtures set up for it."""
    candidate = candidate or Candidate()
    run = _suite_run(suite, client, settings, toolkit, candidate)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(case: Case) -> CaseResult:
        async with gate:
            result = await run.run(case)
        if on_case:
            on_case(result)
        return result

    started, began = datetime.now(UTC), time.perf_counter()
    async with edge_worker(
        client,
        run.settings,
        run.task_queue,
        run.reruns,
        toolkit.providers,
        content=run.content,
        registry=run.registry,
        reviews=ReviewStore(run.registry.database),
        max_workers=16,
    ):
        results = list(await asyncio.gather(*(one(case) for case in suite.cases)))
    seconds = time.perf_counter() - began
    return summarise(suite, run.bundle, candidate, results, started, seconds, concurrency)


def summarise(
    suite: Suite,
    bundle: AgentBundle,
    candidate: Candidate,
    results: list[CaseResult],
    started: datetime,
    seconds: float,
    concurrency: int,
) -> SuiteResult:
    """The suite's figures and its thresholds (pure)."""
    count = max(len(results), 1)
    pass_rate = sum(r.passed for r in results) / count
    cost = sum(r.cost_usd for r in results) / count
    tokens = sum(r.tokens for r in results) / count
    calls = sum(r.tool_calls for r in results) / count
    t = suite.thresholds
    failures = []
    if pass_rate < t.pass_rate:
        failures.append(f"pass_rate {pass_rate:.3f} < {t.pass_rate}")
    for name, limit, actual in (
        ("cost_per_task_usd", t.max_cost_per_task_usd, cost),
        ("tokens_per_task", t.max_tokens_per_task, tokens),
        ("tool_calls_per_task", t.max_tool_calls_per_task, calls),
    ):
        if limit is not None and actual > limit:
            failures.append(f"{name} {actual:.6g} > {limit}")
    config = bundle.config
    return SuiteResult(
        suite=suite.suite,
        suite_version=suite.version,
        agent=config.name,
        agent_version=config.effective_version,
        policy_version=bundle.policy.version,
        model_ids=sorted({spec.model for spec in config.models.values()}),
        candidate=candidate.describe(),
        started_at=started.isoformat(),
        seconds=round(seconds, 3),
        concurrency=concurrency,
        cases=results,
        pass_rate=round(pass_rate, 4),
        cost_per_task_usd=round(cost, 8),
        tokens_per_task=round(tokens, 2),
        tool_calls_per_task=round(calls, 3),
        threshold_failures=failures,
        passed=not failures,
    )
