"""The operator report: success, cost and compliance figures computed from the runs."""

from tiergate.report._collect import collect, visibility_query
from tiergate.report._figures import (
    Distribution,
    PendingApproval,
    Report,
    RunFacts,
    compute,
    distribution,
    percentile,
)
from tiergate.report._html import render_html

__all__ = [
    "Distribution",
    "PendingApproval",
    "Report",
    "RunFacts",
    "collect",
    "compute",
    "distribution",
    "percentile",
    "render_html",
    "visibility_query",
]
