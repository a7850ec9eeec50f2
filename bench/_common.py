"""What every benchmark shares: the machine it ran on, how its result is saved, and the
read-only workload of the long-run benchmarks."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

#: Distinct read-only calls, so the loop detector stays quiet however long the run.
READS = [("crm.read_ticket", {"ticket_id": f"T-10{n:02d}"}) for n in range(1, 9)] + [
    ("orders.get_status", {"order_id": f"ORD-50{n:02d}"}) for n in range(1, 7)
]


def read_script(steps: int) -> list[dict[str, Any]]:
    """A scripted model's outputs for a run of ``steps`` steps: reads, then an answer."""
    calls = [
        {"kind": "tool_call", "tool": tool, "arguments": args, "reason": "bench"}
        for tool, args in (READS * (steps // len(READS) + 1))[: steps - 1]
    ]
    return [*calls, {"kind": "final_answer", "answer": "done", "reason": "bench"}]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def save(result: dict[str, Any], out: Path) -> None:
    """Writes the result as JSON (bench/_table.py reads it) and prints it."""
    measured = json.dumps(result, indent=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(measured + "\n")
    print(measured)
