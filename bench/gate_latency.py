"""Gate latency: one full gate decision against a bare Cedar call on the same request.

In process, no server. The full gate (`tiergate.workflows.Gate.decide`: allowlist, argument
schema and canonical digest, output rules on emitted fields, Cedar, tier annotations) decides
a refund proposal; the baseline is `cedarpy.is_authorized` on the same Cedar request against
the same pre-parsed `PolicySet`. Each is timed per call over many iterations, interleaved.

    python bench/gate_latency.py [--iterations 5000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import cedarpy
from _common import machine, save

from tiergate.config import load_agent
from tiergate.policies import decimal_fields, no_entities, to_cedar_record
from tiergate.tools import SUPPORT_TOOLS
from tiergate.workflows import Gate, ToolCallProposal


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


def main(iterations: int) -> dict[str, Any]:
    bundle = load_agent("support_refund_agent", None, SUPPORT_TOOLS)
    gate = Gate(bundle.config.name, bundle.config.tools.allowlist, bundle.policy, SUPPORT_TOOLS)
    proposal = ToolCallProposal(
        tool="payments.issue_refund",
        arguments={"order_id": "ORD-5001", "amount_usd": "35", "reason_code": "damaged"},
        reason="bench",
    )
    policies = cedarpy.PolicySet.from_str(bundle.policy.text)
    spec = SUPPORT_TOOLS.specs["payments.issue_refund"]
    canonical = spec.args.model_validate(proposal.arguments).model_dump(mode="json")
    cedar_input = to_cedar_record(canonical, decimal_fields(spec.args))
    request = {  # exactly the request the gate sends Cedar for this proposal
        "principal": {"type": "Agent", "id": bundle.config.name},
        "action": {"type": "Action", "id": spec.name},
        "resource": {"type": "Tool", "id": spec.name},
        "context": {"input": cedar_input, "tier": spec.tier, "step": 1},
    }
    entities = no_entities()  # the pre-parsed empty set the gate passes: the fastest bare call
    assert gate.decide(proposal, 1).verdict.value == "allow"
    assert cedarpy.is_authorized(request, policies, entities).allowed
    full: list[float] = []
    bare: list[float] = []
    for _ in range(iterations):
        began = time.perf_counter()
        cedarpy.is_authorized(request, policies, entities)
        bare.append(time.perf_counter() - began)
        began = time.perf_counter()
        gate.decide(proposal, 1)
        full.append(time.perf_counter() - began)
    g, b = stats_us(full), stats_us(bare)
    return {
        "benchmark": "gate_latency",
        "command": f"python bench/gate_latency.py --iterations {iterations}",
        "machine": machine(),
        "gate": g,
        "bare_cedar": b,
        "ratio_p50": round(g["p50_us"] / b["p50_us"], 3),
        "ratio_p99": round(g["p99_us"] / b["p99_us"], 3),
        "target": "gate p99 <= 1.5x the bare Cedar call",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/gate_latency.json"))
    args = parser.parse_args()
    save(main(args.iterations), args.out)
