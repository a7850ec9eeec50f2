"""Settings of the worker processes tests spawn (crash and chaos drills)."""

from __future__ import annotations

from pathlib import Path

from tiergate.approvals import trusting_dev_admin
from tiergate.settings import Settings


def spawned_worker_settings(address: str, home: str) -> Settings:
    """A worker on ``address`` with its state in ``home``, as the harness's own: runs may
    bring scripted models, and the home's dev administrator is trusted."""
    return trusting_dev_admin(
        Settings(
            offline_model_overrides=True,
            temporal_address=address,
            home=Path(home),
            agents_dir=Path(home) / "agents",
        )
    )
