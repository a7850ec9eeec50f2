"""Shadow and canary rollouts of agent versions, with promotion criteria from the runs."""

from tiergate.control import Criteria, Rollout, RolloutStore, bucket, route
from tiergate.errors import RolloutError
from tiergate.rollout._client import (
    ShadowStats,
    Status,
    VersionFigures,
    figures,
    judge,
    resolve_version,
    start_run,
    status,
    store_for,
)

__all__ = [
    "Criteria",
    "Rollout",
    "RolloutError",
    "RolloutStore",
    "ShadowStats",
    "Status",
    "VersionFigures",
    "bucket",
    "figures",
    "judge",
    "resolve_version",
    "route",
    "start_run",
    "status",
    "store_for",
]
