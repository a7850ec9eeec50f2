"""CLI start-up: `tiergate --help` and `tiergate runs show --history FILE` as whole processes.

Each command is started ``--runs`` times after a warm-up, in turn with the baseline (the
same interpreter starting and exiting, `python -c pass`), and timed from outside (wall
clock of the whole process, CPU from the kernel's accounting of the child). The medians
and their ratio to the baseline are reported; the issue's targets (#25: `--help` under
0.3 s, `runs show --history` under 1 s) are checked against the medians here, never in a
test.

    python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, save

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "tests" / "histories" / "demo-T-1001-recorded.json"
TIERGATE = str(Path(sys.executable).with_name("tiergate"))

COMMANDS = {
    "help": [TIERGATE, "--help"],
    "runs_show_history": [TIERGATE, "runs", "show", "--history", str(HISTORY)],
}
BASELINE = [sys.executable, "-c", "pass"]
TARGETS = {"help": 0.3, "runs_show_history": 1.0}


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(runs: int) -> dict[str, Any]:
    env_columns = os.environ.setdefault("COLUMNS", "120")  # the same rendering every run
    results: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        timed(command)  # warm-up: the file cache, compiled bytecode
        timed(BASELINE)
        walls, cpus, bases = [], [], []
        for _ in range(runs):
            wall, cpu = timed(command)
            walls.append(wall)
            cpus.append(cpu)
            bases.append(timed(BASELINE)[0])
        median = statistics.median(walls)
        results[name] = {
            "wall_s_median": round(median, 3),
            "wall_s_range": [round(min(walls), 3), round(max(walls), 3)],
            "cpu_s_median": round(statistics.median(cpus), 3),
            "baseline_wall_s_median": round(statistics.median(bases), 4),
            "ratio_to_interpreter_start": round(median / statistics.median(bases), 2),
            "target_s": TARGETS[name],
            "target_met": median < TARGETS[name],
        }
    return {
        "benchmark": "cli_startup",
        "command": f"python bench/cli_startup.py --runs {runs}",
        "machine": machine(),
        "columns": env_columns,
        "runs": runs,
        **results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cli_startup.json"))
    args = parser.parse_args()
    save(main(args.runs), args.out)
