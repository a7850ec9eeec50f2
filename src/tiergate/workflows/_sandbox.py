"""The workflow sandbox configuration shared by workers and replayers.

tiergate's pure modules are passed through the sandbox: they are deterministic, start
nothing at import time, and re-importing them (and cedarpy, pydantic) for every workflow
would cost more than the gate itself. The run loop module stays sandboxed, so its own code
is still checked for non-deterministic calls.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = (
    "cedarpy",
    "cryptography",
    "opentelemetry",
    "structlog",
    "tiergate.approvals",
    "pydantic",
    "pydantic_core",
    "tiergate.config",
    "tiergate.digest",
    "tiergate.errors",
    "tiergate.pii",
    "tiergate.policies",
    "tiergate.redaction",
    "tiergate.shared",
    "tiergate.telemetry",
    "tiergate.tools",
    "tiergate.workflows._approval",
    "tiergate.workflows._budget",
    "tiergate.workflows._drift",
    "tiergate.workflows._gate",
    "tiergate.workflows._proposal",
    "tiergate.workflows._records",
    "tiergate.workflows._telemetry",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
