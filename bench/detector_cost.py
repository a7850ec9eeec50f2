"""Detector cost: the sensitive-data detector of issue #22 against the one it replaced.

In process, no server. Each text is scanned by `tiergate.sensitive.pii_kinds` (today's) and
`pii_kinds_v1` (the first detector, kept for replays), interleaved, in several rounds; the
figure is the median over rounds of microseconds per kilobyte, and their ratio. Texts: a
support ticket with a card and an email (1 kB), the same prose without them, and a 64 kB
JSON tool output of records with ids, dates, amounts and a few addresses.

Then the gate's output rule per emitting tool call: `Gate.decide` on an `email.send` whose
1 kB body is checked, with each detector, against the same gate with a detector that finds
nothing (the rest of the decision), so the difference is what the rule costs.

    python bench/detector_cost.py [--iterations 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine, save

from tiergate.config import PACKAGED_AGENTS, load_agent
from tiergate.core import Gate, ToolCallProposal
from tiergate.demo import SUPPORT_TOOLS
from tiergate.sensitive import pii_kinds, pii_kinds_v1

PROSE = (
    "Hi, my order ORD-5001 arrived on 2026-11-24 and the mug was broken. I paid $35.00 and "
    "would like a refund, or a replacement if that is quicker. The box was dented at one "
    "corner and the packing slip says v2.3 of the design. Tracking 1Z999AA10123456784. "
)
TICKET = (PROSE * 4)[:900] + " card 4111 1111 1111 1111, write to pat@customers.example.com"
CLEAN = (PROSE * 5)[:1024]
RECORDS = json.dumps(
    [
        {
            "id": f"ORD-{5000 + n}",
            "placed": f"2026-11-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
            "total_usd": f"{(n * 37) % 900 + 0.99:.2f}",
            "status": "delivered" if n % 3 else "in_transit",
            "note": f"contact c{n}@customers.example.com" if n % 50 == 0 else "no note",
        }
        for n in range(560)
    ]
)[: 64 * 1024]
TEXTS = {"ticket_1kB": TICKET, "clean_1kB": CLEAN, "json_64kB": RECORDS}


def per_kb(detect: Callable[[str], list[str]], text: str, iterations: int) -> float:
    began = time.perf_counter()
    for _ in range(iterations):
        detect(text)
    return (time.perf_counter() - began) / iterations / (len(text) / 1024) * 1e6


def per_call(gate: Gate, proposal: ToolCallProposal, iterations: int) -> float:
    began = time.perf_counter()
    for _ in range(iterations):
        gate.decide(proposal, step=1)
    return (time.perf_counter() - began) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/detector_cost.json"))
    args = parser.parse_args()

    scans: dict[str, dict[str, list[float]]] = {n: {"new": [], "old": []} for n in TEXTS}
    bundle = load_agent("support_refund_agent", PACKAGED_AGENTS, SUPPORT_TOOLS.specs)
    gates = {
        "new": Gate.of(bundle, detect=pii_kinds),
        "old": Gate.of(bundle, detect=pii_kinds_v1),
        "none": Gate.of(bundle, detect=lambda _: []),
    }
    email = ToolCallProposal(
        tool="email.send",
        arguments={"to": "pat@customers.example.com", "subject": "Your refund", "body": CLEAN},
        reason="bench",
    )
    decisions: dict[str, list[float]] = {name: [] for name in gates}
    for _ in range(args.rounds):
        for name, text in TEXTS.items():
            # Fewer passes over the big text, so each round takes about as long per text.
            n = max(1, args.iterations // max(1, len(text) // 1024))
            scans[name]["new"].append(per_kb(pii_kinds, text, n))
            scans[name]["old"].append(per_kb(pii_kinds_v1, text, n))
        for name, gate in gates.items():
            decisions[name].append(per_call(gate, email, args.iterations))

    texts: dict[str, Any] = {}
    for name, times in scans.items():
        new, old = statistics.median(times["new"]), statistics.median(times["old"])
        texts[name] = {
            "new_us_per_kb": round(new, 1),
            "old_us_per_kb": round(old, 1),
            "ratio": round(new / old, 2),
        }
    median = {name: statistics.median(times) for name, times in decisions.items()}
    save(
        {
            "benchmark": "detector_cost",
            "command": f"python bench/detector_cost.py --iterations {args.iterations} "
            f"--rounds {args.rounds}",
            "machine": machine(),
            "texts": texts,
            "output_rule_per_emitting_call_us": {
                "new": round(median["new"] - median["none"], 1),
                "old": round(median["old"] - median["none"], 1),
                "decision_without_rule_us": round(median["none"], 1),
            },
        },
        args.out,
    )


if __name__ == "__main__":
    main()
