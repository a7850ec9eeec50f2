"""The support demo, built on tiergate's public API like any team's own agent would be.

Its tools are six `Toolset`s built around the store they act on, a SQLite file or a
PostgreSQL database (`support_toolsets(SupportDesk(SupportStore(url)))`; their specs:
`SUPPORT_TOOLS`), with an
eval fixture (`SUPPORT_FIXTURE`, ``support`` in a suite), the offline rule-based model
(`DemoProvider`, provider ``demo``), and its agents and policies (`agents/`, `policies/`).
`SUPPORT_TOOLKIT` is all of it as a worker serves it.
"""

from tiergate.demo._backend import SupportDesk
from tiergate.demo._cases import SUPPORT_FIXTURE, SupportState
from tiergate.demo._model import DemoProvider
from tiergate.demo._scenarios import (
    DEMO_AGENT,
    DEMO_APPROVERS,
    SCENARIOS,
    WAITING_SCENARIO,
    Scenario,
    approve_when_waiting,
    register_demo_approvers,
    run_scenarios,
    scenario_input,
)
from tiergate.demo._store import DEMO_ORDERS, DEMO_TICKETS, DEMO_USERS, SupportStore
from tiergate.demo._toolkit import SUPPORT_TOOLKIT
from tiergate.demo._tools import SUPPORT_TOOLS, support_toolsets

__all__ = [
    "DEMO_AGENT",
    "DEMO_APPROVERS",
    "DEMO_ORDERS",
    "DEMO_TICKETS",
    "DEMO_USERS",
    "SCENARIOS",
    "SUPPORT_FIXTURE",
    "SUPPORT_TOOLKIT",
    "SUPPORT_TOOLS",
    "WAITING_SCENARIO",
    "DemoProvider",
    "Scenario",
    "SupportDesk",
    "SupportState",
    "SupportStore",
    "approve_when_waiting",
    "register_demo_approvers",
    "run_scenarios",
    "scenario_input",
    "support_toolsets",
]
