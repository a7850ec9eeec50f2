"""Settings of the worker processes tests spawn (crash and chaos drills)."""

from __future__ import annotations

import os
from pathlib import Path

from tiergate.approvals import trusting_dev_admin
from tiergate.settings import Settings


def spawned_worker_settings(address: str, home: str) -> Settings:
    """A worker on ``address`` with its state in ``home``, as the harness's own: runs may
    bring scripted models, and the home's dev administrator is trusted — unless the
    environment names the administrators (``TIERGATE_REGISTRY_ADMINS``: a fleet's hosts
    trust the fleet's one administrator, never a key of their own), and the rest of the
    environment (shared store, content) applies."""
    settings = Settings(
        offline_model_overrides=True,
        temporal_address=address,
        home=Path(home),
        agents_dir=Path(home) / "agents",
    )
    if "TIERGATE_REGISTRY_ADMINS" in os.environ:
        return settings
    return trusting_dev_admin(settings)
