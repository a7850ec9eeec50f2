"""tiergate's OpenTelemetry instruments: the seed's cost and safety buckets as metrics.

Instruments are made from the global meter provider's proxy, which binds late, so this
module can be imported before telemetry is installed (and from workflow code, where the
replay-safe provider drops recordings made while history is replayed).
"""

from __future__ import annotations

from opentelemetry import metrics

_meter = metrics.get_meter("tiergate")

#: Bucket bounds for USD per run: cents to a few dollars.
_COST_BOUNDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
_SECONDS_BOUNDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400]
_COUNT_BOUNDS = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55]
_TOKEN_BOUNDS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576]

runs = _meter.create_counter("tiergate.runs", "{run}", "Finished runs by agent and outcome.")
run_duration = _meter.create_histogram(
    "tiergate.run.duration",
    "s",
    "Work time of a run (approval waits excluded).",
    explicit_bucket_boundaries_advisory=_SECONDS_BOUNDS,
)
run_cost = _meter.create_histogram(
    "tiergate.run.cost",
    "USD",
    "Model cost of a run; filter outcome=completed for cost per completed task.",
    explicit_bucket_boundaries_advisory=_COST_BOUNDS,
)
run_tokens = _meter.create_histogram(
    "tiergate.run.tokens",
    "{token}",
    "Tokens of a run.",
    explicit_bucket_boundaries_advisory=_TOKEN_BOUNDS,
)
run_tool_calls = _meter.create_histogram(
    "tiergate.run.tool_calls",
    "{call}",
    "Tool calls of a run.",
    explicit_bucket_boundaries_advisory=_COUNT_BOUNDS,
)
step_duration = _meter.create_histogram(
    "tiergate.step.duration",
    "s",
    "Latency of one step (approval waits excluded).",
    explicit_bucket_boundaries_advisory=_SECONDS_BOUNDS,
)
token_usage = _meter.create_histogram(
    "gen_ai.client.token.usage",
    "{token}",
    "Tokens per model call (OpenTelemetry GenAI semantic conventions).",
    explicit_bucket_boundaries_advisory=_TOKEN_BOUNDS,
)
policy_denials = _meter.create_counter(
    "tiergate.policy.denials", "{decision}", "Gate denials by code and policy id."
)
blocked_actions = _meter.create_counter(
    "tiergate.actions.blocked",
    "{action}",
    "Proposed actions or outputs that did not go through, by cause.",
)
escalations = _meter.create_counter(
    "tiergate.escalations", "{escalation}", "Work handed to people, by kind."
)
approvals_pending = _meter.create_up_down_counter(
    "tiergate.approvals.pending", "{approval}", "Actions waiting for approvers now."
)
approval_wait = _meter.create_histogram(
    "tiergate.approval.wait",
    "s",
    "How long an action waited for its approvers, by tier and result.",
    explicit_bucket_boundaries_advisory=_SECONDS_BOUNDS,
)
model_drift = _meter.create_counter(
    "tiergate.model.drift",
    "{call}",
    "Model calls answered by a model (or fingerprint) the agent's pin does not accept.",
)
budget_stops = _meter.create_counter(
    "tiergate.budget.stops", "{run}", "Runs stopped by a budget, by limit."
)
budget_adjustments = _meter.create_counter(
    "tiergate.budget.adjustments",
    "{adjustment}",
    "Budgets shrunk, and runs escalated, by budgets.adaptive after ambiguous results.",
)
