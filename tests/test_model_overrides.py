"""Issue #20, item 2: run input cannot choose where models are called or with which secret.

An attacker who can start runs sends `model_overrides` pointing a priced model at their own
listener with the worker's key variable; the worker must refuse the run before any model
call, so the listener never hears the key. A real local HTTP listener stands in for theirs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.conftest import Harness, final, scripted
from tests.fake_openai import completion, serve
from tests.test_openai_provider import declared, priced_agent
from tiergate.config import load_agent
from tiergate.core import WORKFLOW_NAME, Gate, ModelSpec, Outcome, RunInput, RunState
from tiergate.demo import SUPPORT_TOOLKIT, SUPPORT_TOOLS
from tiergate.errors import RunInputError
from tiergate.sensitive import pii_kinds
from tiergate.settings import Settings
from tiergate.worker import build_worker

DECLARED = {
    "provider": "openai",
    "model": "gpt-test",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key_env": "TIERGATE_TEST_KEY",
}


async def refused(
    harness: Harness, agent: str, overrides: dict[str, Any], settings: Settings | None = None
) -> str:
    """The RunInputError a run with ``overrides`` fails with, on a worker with ``settings``
    (default: the harness's, which takes offline models as tests need)."""
    worker = build_worker(
        harness.env.client,
        settings or harness.settings,
        SUPPORT_TOOLKIT,
        task_queue=harness.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        async with worker:
            await harness.env.client.execute_workflow(
                WORKFLOW_NAME,
                harness.input(agent, model_overrides=overrides),
                id=f"override-{uuid.uuid4()}",
                task_queue=harness.task_queue,
            )
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "RunInputError"
    return cause.message


@pytest.mark.parametrize(
    "override",
    [
        {"base_url": "LISTENER", "api_key_env": "TIERGATE_TEST_KEY"},
        {"base_url": "LISTENER"},
        {"api_key_env": "HOME"},
        {"model": "gpt-4o", "base_url": "LISTENER"},
    ],
    ids=["url_and_key", "url", "key_variable", "undeclared_model"],
)
async def test_an_override_cannot_send_the_worker_s_key_elsewhere(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, override: dict[str, str]
) -> None:
    monkeypatch.setenv("TIERGATE_TEST_KEY", "sk-worker-secret")
    agent = priced_agent(harness)
    declared(harness, agent, {"frontier": DECLARED})
    with serve([completion({"content": "thanks for the key"})]) as listener:
        asked = {k: (listener.base_url if v == "LISTENER" else v) for k, v in override.items()}
        message = await refused(
            harness, agent, {"frontier": {"provider": "openai", "model": "gpt-test", **asked}}
        )
    assert listener.requests == []
    assert "model_overrides.frontier" in message


async def test_a_run_may_pick_a_declared_model_by_tier_or_id(harness: Harness) -> None:
    agent = harness.add_agent("a", model_tier={"executor": "frontier"})
    summary = await harness.run(
        agent, input={"ticket_id": "T-1001"}, model_overrides={"frontier": {"model": "small"}}
    )
    assert summary.outcome == Outcome.COMPLETED
    assert summary.versions is not None
    assert summary.versions.requested_models["frontier"] == "demo-small"


async def test_a_production_worker_takes_no_scripted_model_from_a_run(harness: Harness) -> None:
    """A script makes the caller the model: on a production worker that is refused too."""
    production = Settings(home=harness.home, agents_dir=harness.home / "agents")
    assert production.offline_model_overrides is False
    agent = harness.add_agent("a")
    message = await refused(harness, agent, scripted(final()), production)
    assert "this worker takes no offline models from runs" in message


def test_the_rule_is_pure_and_names_the_fix() -> None:
    bundle = load_agent("support_refund_agent", None, SUPPORT_TOOLS.specs)
    gate = Gate.of(bundle, detect=pii_kinds)
    evil = ModelSpec(provider="openai", model="demo-frontier", base_url="http://evil.example/v1")
    with pytest.raises(RunInputError, match="cannot choose where models are called"):
        RunState(bundle, RunInput(agent="a", model_overrides={"frontier": evil}), gate, _T0)
    with pytest.raises(RunInputError, match="no model tier 'nope'"):
        RunState(bundle, RunInput(agent="a", model_overrides={"nope": evil}), gate, _T0)


_T0 = datetime(2026, 12, 1, tzinfo=UTC)
