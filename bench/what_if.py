"""Offline what-if throughput: recorded tool calls re-decided per second, from history files.

In process, no server. The recorded demo histories (`tests/histories`, 8 runs, read
``--copies`` times over: a day's traffic of 200 runs by default) are read from their files
and every recorded tool call re-decided under a candidate that reads the session (the
demo's policies plus two over the run's call counts), flips listed: the whole of `tiergate
policy what-if FILES` but the printing. Reported: decisions per second over histories
already read (what a `--query` run does once the server has sent them) and from the files
(Temporal's JSON history parser is most of that time). The baseline, in the same rounds, is
the gate alone making the same decisions on the same proposals (two per call: the pinned set
and the candidate), with nothing read: what the what-if pays on top is decoding each step's
payloads and rebuilding its session.

    python bench/what_if.py [--copies 25] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, save

from tiergate.core import NOTHING_YET, Gate, ToolCallProposal
from tiergate.forensics import (
    CandidateFor,
    RunView,
    candidate_policies,
    load_history_file,
    read_history,
    what_if,
)
from tiergate.sensitive import pii_kinds

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "histories"
DEMO_POLICIES = ROOT / "src" / "tiergate" / "demo" / "policies" / "support.cedar"
#: Policies over the run's counts: the recordings' pinned tools declare no session fields.
SESSION_POLICIES = ROOT / "tests" / "policies" / "counts" / "session_counts.cedar"


def candidate_folder() -> Path:
    folder = Path(tempfile.mkdtemp())
    shutil.copy(DEMO_POLICIES, folder)
    shutil.copy(SESSION_POLICIES, folder)
    return folder


def read_views(copies: int) -> list[RunView]:
    """The recorded histories, read from their files ``copies`` times over."""
    files = sorted(HISTORIES.glob("*.json"))
    return [read_history(load_history_file(p)) for p in files * copies]


def one_round(copies: int, candidate_for: CandidateFor) -> dict[str, float]:
    """Reading ``copies`` of the histories, the what-if over them, and the gate alone on
    the same decisions, each timed."""
    clock = time.perf_counter
    began = clock()
    views = read_views(copies)
    read_seconds = clock() - began
    began = clock()
    report = what_if(views, candidate_for)
    what_if_seconds = clock() - began

    calls: list[tuple[Gate, Gate, ToolCallProposal, int]] = []
    for view in views[: len(views) // copies]:
        bundle = view.pinned_bundle()
        pinned = Gate.of(bundle, detect=pii_kinds)
        other = Gate.of(
            bundle.model_copy(update={"policy": candidate_for(bundle)}), detect=pii_kinds
        )
        assert view.summary is not None
        for step in view.summary.steps:
            if isinstance(step.proposal, ToolCallProposal):
                calls.append((pinned, other, step.proposal, step.step))
    began = clock()
    for _ in range(copies):
        for pinned, other, proposal, number in calls:
            pinned.decide(proposal, number, NOTHING_YET)
            other.decide(proposal, number, NOTHING_YET)
    gate_seconds = clock() - began
    decisions = report.decisions
    assert decisions == copies * len(calls), (decisions, len(calls))
    return {
        "decisions": decisions,
        "what_if_per_second": decisions / what_if_seconds,
        "from_files_per_second": decisions / (read_seconds + what_if_seconds),
        "gate_only_per_second": decisions / gate_seconds,
    }


def main(copies: int, rounds: int) -> dict[str, Any]:
    candidate_for = candidate_policies(candidate_folder())
    one_round(1, candidate_for)  # warm-up: parsing policies, importing, caches
    measured = [one_round(copies, candidate_for) for _ in range(rounds)]
    ratios = sorted(r["what_if_per_second"] / r["gate_only_per_second"] for r in measured)

    def median(key: str) -> int:
        return round(statistics.median(r[key] for r in measured))

    return {
        "benchmark": "what_if",
        "command": f"python bench/what_if.py --copies {copies} --rounds {rounds}",
        "machine": machine(),
        "runs_per_round": copies * len(list(HISTORIES.glob("*.json"))),
        "decisions_per_round": measured[0]["decisions"],
        "what_if_decisions_per_second": median("what_if_per_second"),
        "from_files_decisions_per_second": median("from_files_per_second"),
        "gate_only_decisions_per_second": median("gate_only_per_second"),
        "ratio": round(statistics.median(ratios), 4),
        "ratio_range": [round(ratios[0], 4), round(ratios[-1], 4)],
        "rounds": measured,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/what_if.json"))
    args = parser.parse_args()
    save(main(args.copies, args.rounds), args.out)
