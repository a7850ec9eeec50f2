"""Canonical JSON and call digests: how "this exact call" is named everywhere.

The gate allows a digest; the tool activity recomputes it and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Built once: `json.dumps` with non-default options builds a new encoder on every call, which
# was about half of a digest's cost inside the gate (bench/gate_latency.py). Same output.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def call_digest(tool: str, canonical_arguments: dict[str, Any]) -> str:
    """sha256 of the tool name and its canonical arguments."""
    return hashlib.sha256(f"{tool}\n{canonical_json(canonical_arguments)}".encode()).hexdigest()


def idempotency_key(workflow_id: str, first_run_id: str, step: int) -> str:
    """Stable for one step of one run across retries, worker deaths and continue-as-new."""
    return f"{workflow_id}/{first_run_id}/step-{step}"
