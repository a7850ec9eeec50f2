"""The kill switch, caps and rollouts: what operators stop in an incident, how much agents
may do, and which version of an agent serves a new run. The state is in the shared store."""

from tiergate.control._caps import (
    cap_amount,
    cap_counter,
    cap_window,
    caps_for,
)
from tiergate.control._ledger import CapLedger
from tiergate.control._rollouts import (
    Criteria,
    Event,
    Rollout,
    RolloutStore,
    bucket,
    route,
)
from tiergate.control._switch import (
    Controls,
    ControlState,
    Switch,
    SwitchEvent,
    dump,
)

__all__ = [
    "CapLedger",
    "ControlState",
    "Controls",
    "Criteria",
    "Event",
    "Rollout",
    "RolloutStore",
    "Switch",
    "SwitchEvent",
    "bucket",
    "cap_amount",
    "cap_counter",
    "cap_window",
    "caps_for",
    "dump",
    "route",
]
