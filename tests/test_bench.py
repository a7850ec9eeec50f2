"""The benchmarks run (quick mode). Their figures are never asserted here: timings on a
shared machine belong in BENCHMARKS.md as ratios, not in a test that could flake."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench"

#: Every benchmark, with the smallest arguments that still exercise its whole path.
QUICK = {
    "overhead.py": ["--runs", "3", "--rounds", "1"],
    "gate_latency.py": ["--iterations", "50", "--rounds", "2"],
    "approval_latency.py": ["--runs", "3"],
    "waiting_scale.py": ["--runs", "5", "--baseline-runs", "3"],
    "growth.py": ["--steps", "3", "6"],
    "telemetry_overhead.py": ["--runs", "3", "--rounds", "1"],
    "replay_forensics.py": ["--runs", "2", "--repeat", "1", "--timeline-steps", "5"],
    "eval_suite.py": ["--concurrency", "8"],
    "detector_cost.py": ["--iterations", "5", "--rounds", "1"],
    "shared_state.py": ["--runs", "3", "--rounds", "1", "--approvals", "2"],
    "content_storage.py": ["--runs", "1", "--steps", "3", "--rounds", "1"],
    "what_if.py": ["--copies", "1", "--rounds", "1"],
    "cli_startup.py": ["--runs", "1"],
    "parallel_calls.py": ["--runs", "2", "--rounds", "1", "--model-latency", "0.01"],
    "peers.py": ["--runs", "1", "--rounds", "1", "--steps", "3"],
}


def test_the_table_has_a_measured_row_for_every_benchmark() -> None:
    sys.path.insert(0, str(BENCH))
    from _table import SOURCES, table

    rendered = table(BENCH / "results")
    assert "not measured" not in rendered
    assert len(rendered.splitlines()) >= 2 + len(SOURCES)


def test_every_benchmark_is_covered() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(QUICK)


@pytest.mark.parametrize("script", sorted(QUICK))
async def test_benchmark_runs_in_quick_mode(script: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH / script),
        *QUICK[script],
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    text, _ = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, text.decode()[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == script.removesuffix(".py")
    assert result["command"].startswith(f"python bench/{script}")
