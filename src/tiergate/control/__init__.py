"""The kill switch and caps: what operators stop in an incident, and how much agents may do."""

from tiergate.control._caps import (
    cap_amount,
    cap_counter,
    cap_window,
    caps_for,
)
from tiergate.control._ledger import CapLedger
from tiergate.control._switch import (
    Controls,
    ControlState,
    Switch,
    dump,
)

__all__ = [
    "CapLedger",
    "ControlState",
    "Controls",
    "Switch",
    "cap_amount",
    "cap_counter",
    "cap_window",
    "caps_for",
    "dump",
]
