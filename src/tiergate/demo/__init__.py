"""The support demo, built on tiergate's public API like any team's own agent would be.

Its tools (`SUPPORT_TOOLS`), the SQLite store they act on (`SupportStore`, through
`SupportBackend`), the offline rule-based model (`DemoProvider`, provider ``demo``), and its
agents and policies (`agents/`, `policies/`).
"""

from tiergate.demo._backend import SupportBackend
from tiergate.demo._model import DemoProvider
from tiergate.demo._scenarios import (
    DEMO_AGENT,
    DEMO_APPROVERS,
    SCENARIOS,
    Scenario,
    approve_when_waiting,
    register_demo_approvers,
    run_scenarios,
)
from tiergate.demo._store import DEMO_ORDERS, DEMO_TICKETS, DEMO_USERS, SupportStore
from tiergate.demo._toolkit import SUPPORT_TOOLKIT
from tiergate.demo._tools import SUPPORT_TOOLS

__all__ = [
    "DEMO_AGENT",
    "DEMO_APPROVERS",
    "DEMO_ORDERS",
    "DEMO_TICKETS",
    "DEMO_USERS",
    "SCENARIOS",
    "SUPPORT_TOOLKIT",
    "SUPPORT_TOOLS",
    "DemoProvider",
    "Scenario",
    "SupportBackend",
    "SupportStore",
    "approve_when_waiting",
    "register_demo_approvers",
    "run_scenarios",
]
