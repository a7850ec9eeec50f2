"""Spans as a run's workflow code makes them, and the context every span and event carries.

Spans come from the global tracer provider, which tiergate installs as Temporal's
replay-safe provider: ids are drawn from the workflow's deterministic random and spans that
end while history is replayed are not exported again, so a worker restart neither loses nor
duplicates a trace. Log events and metric recordings are skipped while replaying (`live`)
for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio import workflow

from tiergate.core import AgentBundle

log = structlog.get_logger("tiergate.run")
LOGGER = logging.getLogger("tiergate.run")  # its level says whether step events are wanted
PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "demo": "tiergate.demo",
    "scripted": "tiergate.scripted",
}


@cache
def tracer() -> trace.Tracer:
    # Looked up once: `get_tracer` reads the environment and builds a tracer on every call,
    # about 10 µs in the sandbox, 19 times a 5-step run (bench/overhead.py). Keeping it is
    # safe: a process has one provider, a tracer taken before it is installed is a proxy
    # that binds to it later, and the replay-safe tracer checks replay at each span's start.
    return trace.get_tracer("tiergate")


def live() -> bool:
    """True when recordings should be made: in the workflow, and not replaying history.

    Outside the workflow's event loop means the run was evicted from the worker's cache and
    its coroutine is being torn down; the replay that resumes it records instead.
    """
    return workflow.in_workflow() and not workflow.unsafe.is_replaying()


@contextmanager
def open_span(
    name: str,
    attributes: dict[str, Any],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    error_status: bool = True,
    parent: Span | None = None,
) -> Iterator[Span]:
    """A current span that is ended when its block ends, except on eviction (see live).
    Its parent is the current span, or ``parent``."""
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = tracer().start_span(name, context=context, kind=kind, attributes=attributes)
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield span
        except GeneratorExit:
            raise  # evicted: ending it now would export a span the replay will end again
        except Exception as error:
            if error_status:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
            raise
        except BaseException:
            span.end()
            raise
        span.end()


class RunContext:
    """What every span and event of one run carries: its ids, agent and versions."""

    def __init__(self) -> None:
        self.common: dict[str, Any] = {"tiergate.run_id": workflow.info().workflow_id}
        self.agent = ""
        self.log_fields: list[str] = []
        self.context: dict[str, Any] = {}
        self.run_cost = 0.0

    def bind(self, bundle: AgentBundle, requester: str, span: Span) -> None:
        """Called once the agent is loaded: every later span carries its versions."""
        config = bundle.config
        self.agent = config.name
        self.log_fields = config.observability.emitted_fields
        self.common.update(
            {
                "tiergate.agent": config.name,
                "tiergate.agent_version": config.effective_version,
                "tiergate.prompt_version": config.prompts.system.version,
                "tiergate.policy_version": bundle.policy.version,
            }
        )
        info = workflow.info()
        self.context = {
            "run_id": info.workflow_id,
            "temporal_run_id": info.run_id,
            "agent": config.name,
            "agent_version": config.effective_version,
            "config_hash": bundle.config_hash,
            "prompt_version": config.prompts.system.version,
            "policy_version": bundle.policy.version,
            "requester": requester,
        }
        span.set_attributes({**self.common, "tiergate.requester": requester})

    def attributes(self, cost: float, **extra: Any) -> dict[str, Any]:
        attributes = {**self.common, "tiergate.cost_usd": cost}
        attributes["tiergate.run.cost_usd"] = self.run_cost
        attributes.update({k: v for k, v in extra.items() if v is not None})
        return attributes

    def pick(self, names: list[str], values: dict[str, Any]) -> dict[str, Any]:
        merged = {**self.context, **values}
        return {name: merged.get(name) for name in names}
