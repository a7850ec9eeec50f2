"""Gate latency: one full gate decision against a bare Cedar call on the same request.

In process, no server. The full gate (`tiergate.workflows.Gate.decide`: allowlist, argument
schema and canonical digest, output rules on emitted fields, Cedar, tier annotations) decides
a refund proposal; the baseline is `cedarpy.is_authorized` on the same Cedar request against
the same pre-parsed `PolicySet` and the same pre-parsed (empty) entity set, the fastest call
cedarpy offers. Each is timed per call, interleaved, in several rounds: a p99 of one round
moves with whatever else the shared machine did in those seconds, so the headline is the
median of the rounds' p99 ratios, with their range beside it.

Then the cost of session context (issue #24): the same refund decided by a gate whose
policies also read ``context.session`` (the examples of `tests/policies/`), in a run that has
made 20 calls (checked 10 orders, refunded 5), against the demo's gate, interleaved.

Then the cost of a log-only policy (issue #24): the demo's gate with one `@mode("log_only")`
forbid that would deny the refund (so every decision is evaluated twice and records a
would-flip), against the demo's gate, interleaved.

    python bench/gate_latency.py [--iterations 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cedarpy
from _common import machine, save

from tiergate.config import load_agent
from tiergate.core import (
    Gate,
    RunSoFar,
    Session,
    ToolCallProposal,
    no_entities,
    parsed_policies,
    to_cedar_record,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.policies import build_bundle, cedar_schema
from tiergate.sensitive import pii_kinds

SESSION_POLICIES = Path(__file__).resolve().parent.parent / "tests" / "policies"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats_us(values: list[float]) -> dict[str, float]:
    us = [v * 1e6 for v in values]
    return {
        "p50_us": round(statistics.median(us), 1),
        "p99_us": round(percentile(us, 0.99), 1),
        "n": len(us),
    }


def one_round(
    gate: Gate, proposal: ToolCallProposal, request: dict[str, Any], iterations: int
) -> dict[str, Any]:
    """Times `iterations` gate decisions and as many bare Cedar calls, alternating."""
    policies, entities = parsed_policies(gate.policy.text), no_entities()  # the gate's own
    full: list[float] = []
    bare: list[float] = []
    clock = time.perf_counter
    for _ in range(iterations):
        began = clock()
        cedarpy.is_authorized(request, policies, entities)
        bare.append(clock() - began)
        began = clock()
        gate.decide(proposal, 1)
        full.append(clock() - began)
    g, b = stats_us(full), stats_us(bare)
    return {
        "gate": g,
        "bare_cedar": b,
        "ratio_p50": g["p50_us"] / b["p50_us"],
        "ratio_p99": g["p99_us"] / b["p99_us"],
    }


def paired_round(
    baseline: Callable[[], object], measured: Callable[[], object], iterations: int
) -> dict[str, Any]:
    """Times ``baseline`` and ``measured`` (two gates deciding one proposal), alternating."""
    without: list[float] = []
    with_it: list[float] = []
    clock = time.perf_counter
    for _ in range(iterations):
        began = clock()
        baseline()
        without.append(clock() - began)
        began = clock()
        measured()
        with_it.append(clock() - began)
    a, b = stats_us(with_it), stats_us(without)
    return {"with": a, "without": b, "ratio_p99": a["p99_us"] / b["p99_us"]}


TRIAL = """@id("trial_small_refunds") @mode("log_only")
forbid(principal, action == Action::"payments.issue_refund", resource)
when { context.input.amount_usd.greaterThan(decimal("20.00")) };"""


def busy_run() -> RunSoFar:
    """A run 20 calls in: 10 orders checked, 5 refunded, 5 emails sent."""
    specs = SUPPORT_TOOLS.specs
    session = Session()
    for n in range(10):
        session.took_effect(specs["orders.get_status"], {"order_id": f"ORD-50{n:02d}"})
    for n in range(5):
        refund = {"order_id": f"ORD-50{n:02d}", "amount_usd": "10.00", "reason_code": "late"}
        session.took_effect(specs["payments.issue_refund"], refund)
        email = {"to": f"c{n}@customers.example.com", "subject": "s", "body": "b"}
        session.took_effect(specs["email.send"], email)
    return RunSoFar(session, denials=1, invalid_proposals=0, seconds=42.0)


def main(iterations: int, rounds: int) -> dict[str, Any]:
    bundle = load_agent("support_refund_agent", None, SUPPORT_TOOLS.specs)
    gate = Gate.of(bundle, detect=pii_kinds)
    proposal = ToolCallProposal(
        tool="payments.issue_refund",
        arguments={"order_id": "ORD-5001", "amount_usd": "35", "reason_code": "damaged"},
        reason="bench",
    )
    spec = bundle.tools["payments.issue_refund"]
    canonical = spec.canonical_arguments(proposal.arguments)
    cedar_input = to_cedar_record(canonical, spec.argument_schema.decimals)
    request = {  # exactly the request the gate sends Cedar for this proposal
        "principal": {"type": "Agent", "id": bundle.config.name},
        "action": {"type": "Action", "id": spec.name},
        "resource": {"type": "Tool", "id": spec.name},
        "context": {"input": cedar_input, "tier": spec.tier, "step": 1},
    }
    assert gate.decide(proposal, 1).verdict.value == "allow"
    assert cedarpy.is_authorized(request, parsed_policies(gate.policy.text), no_entities()).allowed
    one_round(gate, proposal, request, min(iterations, 500))  # warm-up, not reported
    measured = [one_round(gate, proposal, request, iterations) for _ in range(rounds)]

    def median_of(kind: str, key: str) -> float:
        return round(float(statistics.median(r[kind][key] for r in measured)), 1)

    p99_ratios = sorted(r["ratio_p99"] for r in measured)
    texts = [("demo", bundle.policy.text)]
    texts += [(p.name, p.read_text()) for p in sorted(SESSION_POLICIES.glob("*.cedar"))]
    reading = Gate(
        bundle.config.name,
        bundle.config.allowed_tools,
        build_bundle(texts, cedar_schema(SUPPORT_TOOLS.specs.values(), bundle.tools.values())),
        bundle.tools,
        detect=pii_kinds,
    )
    busy = busy_run()
    checked = ToolCallProposal(
        tool="payments.issue_refund",
        arguments={"order_id": "ORD-5001", "amount_usd": "35", "reason_code": "damaged"},
    )
    assert reading.decide(checked, 21, busy).verdict.value == "allow"

    def plain_at(step: int) -> Callable[[], object]:
        return lambda: gate.decide(checked, step)

    def reading_busy() -> object:
        return reading.decide(checked, 21, busy)

    paired_round(plain_at(21), reading_busy, min(iterations, 500))  # warm-up
    sessions = [paired_round(plain_at(21), reading_busy, iterations) for _ in range(rounds)]
    session_ratios = sorted(r["ratio_p99"] for r in sessions)
    trial = Gate(
        bundle.config.name,
        bundle.config.allowed_tools,
        build_bundle([("demo", bundle.policy.text), ("trial", TRIAL)], bundle.policy.schema_text),
        bundle.tools,
        detect=pii_kinds,
    )
    flipped = trial.decide(proposal, 3)
    assert flipped.verdict.value == "allow"
    assert flipped.would_flip is not None

    def trial_decides() -> object:
        return trial.decide(proposal, 3)

    def demo_decides() -> object:
        return gate.decide(proposal, 3)

    paired_round(demo_decides, trial_decides, min(iterations, 500))  # warm-up
    trials = [paired_round(demo_decides, trial_decides, iterations) for _ in range(rounds)]
    trial_ratios = sorted(r["ratio_p99"] for r in trials)
    return {
        "benchmark": "gate_latency",
        "command": f"python bench/gate_latency.py --iterations {iterations} --rounds {rounds}",
        "machine": machine(),
        "gate": {k: median_of("gate", k) for k in ("p50_us", "p99_us")},
        "bare_cedar": {k: median_of("bare_cedar", k) for k in ("p50_us", "p99_us")},
        "ratio_p50": round(statistics.median(r["ratio_p50"] for r in measured), 4),
        "ratio_p99": round(statistics.median(p99_ratios), 4),
        "ratio_p99_range": [round(p99_ratios[0], 4), round(p99_ratios[-1], 4)],
        "rounds": [
            {**r, "ratio_p50": round(r["ratio_p50"], 4), "ratio_p99": round(r["ratio_p99"], 4)}
            for r in measured
        ],
        "target": "gate p99 <= 1.5x the bare Cedar call (median of the rounds' ratios)",
        "session": {
            "with_session_p99_us": round(
                float(statistics.median(r["with"]["p99_us"] for r in sessions)), 1
            ),
            "without_p99_us": round(
                float(statistics.median(r["without"]["p99_us"] for r in sessions)), 1
            ),
            "ratio_p99": round(statistics.median(session_ratios), 4),
            "ratio_p99_range": [round(session_ratios[0], 4), round(session_ratios[-1], 4)],
        },
        "log_only": {
            "with_log_only_p99_us": round(
                float(statistics.median(r["with"]["p99_us"] for r in trials)), 1
            ),
            "without_p99_us": round(
                float(statistics.median(r["without"]["p99_us"] for r in trials)), 1
            ),
            "ratio_p99": round(statistics.median(trial_ratios), 4),
            "ratio_p99_range": [round(trial_ratios[0], 4), round(trial_ratios[-1], 4)],
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench/results/gate_latency.json"))
    args = parser.parse_args()
    save(main(args.iterations, args.rounds), args.out)
