"""What the run has done so far, as Cedar decisions see it (``context.session``), for the
bundles whose policies read it.

A tool spec declares which argument fields are *keys* (``session_keys``: an order id, an
email address) and which are *summed* (``session_sums``: a refund's amount). The session
counts the calls that took effect (an allowed call whose tool answered ``ok``), sums their
summed fields and keeps the values of their key fields, per tool; with the run's denials,
invalid proposals and seconds of work, that is the context a policy can use:

- ``context.session.calls["orders.get_status"]``: calls of that tool so far (Long);
- ``context.session.seen["orders.get_status"]["order_id"]``: the key values used (Set);
- ``context.session.sums["payments.issue_refund"]["amount_usd"]``: the running sum, and
  ``sums_after[...]``: the same with this call's own value added (Cedar cannot add
  decimals, so "at most $300 per run" compares ``sums_after`` with a limit);
- ``context.session.denials``, ``.invalid_proposals``, ``.seconds``: Longs.

Every tool of the bundle is present (zero counts, empty sets), so a policy never meets a
missing attribute. Built by pure code from the run's own records, so a replay reaches the
same decisions; carried across continue-as-new (`RunCarry.session`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core._cedar import to_cedar_value
from tiergate.core._tools import ToolSpec


class Session(BaseModel):
    """The effects of a run so far, by tool (what `RunCarry` takes to the next segment)."""

    model_config = ConfigDict(extra="forbid")

    calls: dict[str, int] = Field(default_factory=dict)
    #: tool -> field -> the running sum, as canonical decimal text (or an integer's).
    sums: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: tool -> field -> the key values used, sorted.
    seen: dict[str, dict[str, list[str]]] = Field(default_factory=dict)

    def took_effect(self, spec: ToolSpec, arguments: Mapping[str, Any]) -> None:
        """Counts a call of ``spec`` with these canonical arguments that took effect."""
        self.calls[spec.name] = self.calls.get(spec.name, 0) + 1
        for name in spec.session_sums:
            if arguments.get(name) is not None:
                sums = self.sums.setdefault(spec.name, {})
                sums[name] = str(_number(sums.get(name, "0")) + _number(arguments[name]))
        for name in spec.session_keys:
            if arguments.get(name) is not None:
                values = self.seen.setdefault(spec.name, {}).setdefault(name, [])
                if str(arguments[name]) not in values:
                    values.append(str(arguments[name]))
                    values.sort()

    def context(
        self,
        tools: Mapping[str, ToolSpec],
        spec: ToolSpec,
        arguments: Mapping[str, Any],
        *,
        denials: int,
        invalid_proposals: int,
        seconds: float,
    ) -> dict[str, Any]:
        """``context.session`` for a call of ``spec`` with these canonical arguments."""
        sums = {tool.name: self._sums(tool, None) for tool in tools.values() if tool.session_sums}
        after = dict(sums)
        if spec.session_sums:
            after[spec.name] = self._sums(spec, arguments)
        return {
            "calls": {name: self.calls.get(name, 0) for name in tools},
            "sums": sums,
            "sums_after": after,
            "seen": {
                tool.name: {
                    field: list(self.seen.get(tool.name, {}).get(field, []))
                    for field in tool.session_keys
                }
                for tool in tools.values()
                if tool.session_keys
            },
            "denials": denials,
            "invalid_proposals": invalid_proposals,
            "seconds": int(seconds),
        }

    def _sums(self, spec: ToolSpec, adding: Mapping[str, Any] | None) -> dict[str, Any]:
        done = self.sums.get(spec.name, {})
        out: dict[str, Any] = {}
        for name in spec.session_sums:
            total = _number(done.get(name, "0"))
            if adding is not None and adding.get(name) is not None:
                total += _number(adding[name])
            decimal = spec.argument_schema.cedar[name][0] == "decimal"
            out[name] = to_cedar_value(total) if decimal else int(total)
        return out


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


class RunCounts(BaseModel):
    """The run's counters a step's gate decision saw, recorded with the step (its mark in
    the history, its tool call's input) so the decision can be reached again offline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    denials: int = 0
    invalid_proposals: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class RunSoFar:
    """What the gate is told of the run besides the call: its session and counters."""

    session: Session
    denials: int = 0
    invalid_proposals: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, session: Session, counts: RunCounts) -> RunSoFar:
        return cls(session, counts.denials, counts.invalid_proposals, counts.seconds)

    @property
    def counts(self) -> RunCounts:
        return RunCounts(
            denials=self.denials, invalid_proposals=self.invalid_proposals, seconds=self.seconds
        )

    def context(
        self, tools: Mapping[str, ToolSpec], spec: ToolSpec, arguments: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self.session.context(
            tools,
            spec,
            arguments,
            denials=self.denials,
            invalid_proposals=self.invalid_proposals,
            seconds=self.seconds,
        )


#: A run that has done nothing yet (and what callers without a run pass).
NOTHING_YET = RunSoFar(Session())
