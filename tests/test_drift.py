"""Model drift: a provider answering as another model (or configuration) than the pin."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Captured, Harness
from tests.fake_openai import Reply, completion, serve, tool_call
from tests.test_openai_provider import declared, openai, priced_agent
from tiergate.core import (
    ModelCall,
    ModelDrift,
    ModelSpec,
    Outcome,
    accepts,
    detect_drift,
    tool_activity_name,
)
from tiergate.forensics import read_history


@pytest.mark.parametrize(
    ("pinned", "reported", "ok"),
    [
        ("gpt-4o", "gpt-4o", True),
        ("gpt-4o", "gpt-4o-2024-08-06", True),
        ("claude-x", "claude-x-20241022", True),
        ("demo-frontier", "demo-frontier@rules-1", True),
        ("gpt-4o", "gpt-4o-mini", False),
        ("gpt-4o", "gpt-4o-mini-2024-07-18", False),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20", False),
    ],
)
def test_the_pin_accepts_itself_and_its_dated_variants(
    pinned: str, reported: str, ok: bool
) -> None:
    assert accepts(ModelSpec(model=pinned), reported) is ok


def test_expected_models_replace_the_default_rule() -> None:
    spec = ModelSpec(model="gpt-4o", expected_models=["gpt-4o-2024-08-06"])
    assert accepts(spec, "gpt-4o-2024-08-06")
    assert not accepts(spec, "gpt-4o-2024-11-20")


def call(reported: str, fingerprint: str | None = None) -> ModelCall:
    return ModelCall(
        purpose="propose",
        tier="frontier",
        provider="openai",
        requested_model="gpt-4o",
        reported_model=reported,
        fingerprint=fingerprint,
    )


def kind(drift: ModelDrift | None) -> str | None:
    return drift.kind if drift else None


def test_drift_kinds() -> None:
    spec = ModelSpec(provider="openai", model="gpt-4o")
    first = call("gpt-4o-2024-08-06", "fp_a")
    assert detect_drift(spec, first, []) is None
    changed = detect_drift(spec, call("gpt-4o-2024-11-20", "fp_a"), [first])
    assert changed is not None
    assert changed.kind == "model_changed"
    assert kind(detect_drift(spec, call("gpt-4o-2024-08-06", "fp_b"), [first])) == (
        "fingerprint_changed"
    )
    pinned = ModelSpec(provider="openai", model="gpt-4o", fingerprints=["fp_a"])
    assert kind(detect_drift(pinned, call("gpt-4o", "fp_z"), [])) == "unexpected_fingerprint"
    swapped = detect_drift(spec, call("gpt-4o-mini"), [])
    assert swapped is not None
    assert swapped.kind == "unexpected_model"
    assert "pins 'gpt-4o'" in swapped.message


def swapped_replies() -> list[Reply]:
    read = tool_call("crm__read_ticket", {"ticket_id": "T-1001", "reason": "look"})
    read.body["model"] = "gpt-test-mini-2026-02-02"
    done = completion({"content": "Handled."}, model="gpt-test-mini-2026-02-02")
    return [read, done]


async def test_a_swapped_model_is_flagged_and_the_run_goes_on(
    harness: Harness, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERGATE_TEST_KEY", "sk-test-key")
    agent = priced_agent(harness)
    with serve(swapped_replies()) as fake:
        summary = await harness.run(
            agent, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.COMPLETED
    assert "model_drift" in summary.alerts
    drift = summary.steps[0].model_drift
    assert drift is not None
    assert (drift.kind, drift.requested, drift.reported) == (
        "unexpected_model",
        "gpt-test",
        "gpt-test-mini-2026-02-02",
    )
    assert summary.model_calls[0].drift == drift
    events = [
        e
        for e in captured.logs()
        if e.get("event") == "model_drift" and e.get("run_id") == summary.workflow_id
    ]
    assert [e["kind"] for e in events] == ["unexpected_model", "unexpected_model"]
    assert events[0]["level"] == "warning"
    spans = [s for s in captured.spans(summary.workflow_id) if s.name == "chat gpt-test"]
    assert all(
        (s.attributes or {}).get("tiergate.model.drift") == "unexpected_model" for s in spans
    )
    view = read_history(await harness.history(summary.workflow_id))
    assert view.marks[1].model_drift == "unexpected_model"


async def test_the_agent_can_stop_on_drift_before_acting(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERGATE_TEST_KEY", "sk-test-key")
    agent = priced_agent(harness, on_model_drift="stop")
    with serve(swapped_replies()) as fake:
        summary = await harness.run(
            agent, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.ESCALATED
    assert summary.reason.startswith("model drift: tier frontier pins 'gpt-test'")
    assert summary.usage.tool_calls == 0
    history = await harness.history(summary.workflow_id)
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert tool_activity_name("crm.read_ticket") not in scheduled


async def test_a_fingerprint_change_mid_run_is_flagged(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERGATE_TEST_KEY", "sk-test-key")
    agent = priced_agent(harness)
    first = tool_call("crm__read_ticket", {"ticket_id": "T-1001", "reason": "look"})
    second = completion({"content": "Handled."})
    body: dict[str, Any]
    for reply, fingerprint in ((first, "fp_a"), (second, "fp_b")):
        body = reply.body
        body["system_fingerprint"] = fingerprint
    with serve([first, second]) as fake:
        summary = await harness.run(
            agent, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.COMPLETED
    assert [c.fingerprint for c in summary.model_calls] == ["fp_a", "fp_b"]
    assert summary.steps[0].model_drift is None
    drift = summary.steps[1].model_drift
    assert drift is not None
    assert drift.kind == "fingerprint_changed"
