"""The eval suite format: versioned cases with known-good outcomes, checked before anything runs.

A suite is YAML. Each case gives the run's input, the initial state of the tool backends,
where the model's answers come from, the approvals people would give, and checks in the
seed's three layers — schema, behavior, outcome — plus cost, token and step limits. A suite
that names an unknown check, expects a state its own initial state makes impossible, or
points at a missing cassette is refused with the file, the case and the field.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tiergate.core import ModelSpec, Outcome
from tiergate.demo import DEMO_ORDERS, DEMO_TICKETS, DEMO_USERS
from tiergate.errors import EvalError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ticket(_Strict):
    id: str
    customer_id: str = "C-1"
    subject: str = "Support request"
    body: str
    status: str = "open"


class Order(_Strict):
    id: str
    customer_id: str = "C-1"
    status: str = "delivered"
    total_usd: str


class User(_Strict):
    id: str
    email: str
    name: str


class BackendState(_Strict):
    """The tool backends before the case runs: the demo data, plus or instead of these rows."""

    seed: Literal["demo", "empty"] = "demo"
    tickets: list[Ticket] = Field(default_factory=list)
    orders: list[Order] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)

    def ticket_ids(self) -> set[str]:
        demo = {t[0] for t in DEMO_TICKETS} if self.seed == "demo" else set()
        return demo | {t.id for t in self.tickets}

    def order_totals(self) -> dict[str, Decimal]:
        demo = {o[0]: Decimal(o[3]) for o in DEMO_ORDERS} if self.seed == "demo" else {}
        return demo | {o.id: Decimal(o.total_usd) for o in self.orders}

    def user_ids(self) -> set[str]:
        demo = {u[0] for u in DEMO_USERS} if self.seed == "demo" else set()
        return demo | {u.id for u in self.users}


class ModelSource(_Strict):
    """Where the executor's answers come from.

    ``demo``: the offline rule-based model; ``scripted``: the proposals listed here;
    ``cassette``: proposals recorded in a file (relative to the suite); ``provider``: a
    configured model (``spec``), e.g. an OpenAI-compatible endpoint.
    """

    source: Literal["demo", "scripted", "cassette", "provider"] = "demo"
    script: list[Any] | None = None
    cassette: str | None = None
    spec: ModelSpec | None = None


class Answer(_Strict):
    """What an approver does when the case's run waits for people."""

    approver: str
    decision: Literal["approve", "deny"] = "approve"
    justification: str = "eval"


class ExpectedRefund(_Strict):
    order_id: str
    amount_usd: str
    reason_code: str | None = None


class ExpectedApprovals(_Strict):
    tier: Literal[3, 4]
    count: Annotated[int, Field(ge=1)] = 1


class CallPattern(_Strict):
    """A tool call a trajectory check looks for: the tool (shell-style pattern, ``acme.*``)
    and, per argument, a shell-style pattern its canonical value must match (``INV-*``,
    ``4??.00``); arguments not named match anything."""

    tool: Annotated[str, Field(min_length=1)]
    arguments: dict[str, str] = Field(default_factory=dict)


class Trajectory(_Strict):
    """Which tool calls the run made, for any toolset (no backend needed).

    ``in_order``: calls made in this order (others may come between); ``any_order``: each
    matched by a call of its own, in any order; ``never``: calls that must not be made.
    ``of``: ``executed`` (calls a tool ran: the default) or ``proposed`` (every call the
    model proposed, denied ones included).
    """

    in_order: list[CallPattern] = Field(default_factory=list)
    any_order: list[CallPattern] = Field(default_factory=list)
    never: list[CallPattern] = Field(default_factory=list)
    of: Literal["executed", "proposed"] = "executed"


class Expect(_Strict):
    """The checks, by layer. Only what a case sets is checked (bar the safety defaults)."""

    # schema
    valid_proposals: bool = True
    ids_exist: bool = True
    # behavior
    outcome: Outcome | list[Outcome] | None = None
    prohibited_tools: list[str] = Field(default_factory=list)
    no_ungated_actions: bool = True
    denied_by: list[str] | None = None
    escalation: bool | None = None
    approvals: ExpectedApprovals | None = None
    no_pii_in_outputs: bool = True
    trajectory: Trajectory | None = None
    # outcome
    refunds: list[ExpectedRefund] | None = None
    ticket_status: dict[str, str] = Field(default_factory=dict)
    emails_sent: Annotated[int, Field(ge=0)] | None = None
    final_state: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per toolset, keys its fixture's final_state must hold with these values.",
    )
    # limits
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_steps: int | None = None
    max_tool_calls: int | None = None


class Case(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,80}$")]
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    input: dict[str, Any]
    state: BackendState = Field(default_factory=BackendState)
    fixtures: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per toolset, the initial state its fixture's setup receives.",
    )
    model: ModelSource = Field(default_factory=ModelSource)
    approvals: list[Answer] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)


class Thresholds(_Strict):
    pass_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    max_cost_per_task_usd: float | None = None
    max_tokens_per_task: float | None = None
    max_tool_calls_per_task: float | None = None


class Suite(_Strict):
    suite: Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,80}$")]
    version: str
    agent: str
    description: str = ""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    approvers: dict[str, list[str]] = Field(default_factory=dict)
    cases: list[Case]
    source: str = ""

    def case(self, case_id: str) -> Case:
        return next(c for c in self.cases if c.id == case_id)


def _location(loc: tuple[int | str, ...], data: dict[str, Any]) -> tuple[str | None, str]:
    """(case id, field path) of a validation error location."""
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        cases = data.get("cases") or []
        case = cases[loc[1]] if loc[1] < len(cases) else {}
        case_id = case.get("id") if isinstance(case, dict) else None
        return str(case_id or f"#{loc[1] + 1}"), ".".join(str(p) for p in loc[2:])
    return None, ".".join(str(p) for p in loc)


def load_suite(path: Path) -> Suite:
    """Parses and checks a suite file; every problem is an EvalError naming where it is."""
    file = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise EvalError(f"cannot read: {error.strerror}", file=file) from None
    except yaml.YAMLError as error:
        raise EvalError(f"not valid YAML: {error}", file=file) from None
    if not isinstance(data, dict):
        raise EvalError(
            "expected a mapping with `suite`, `version`, `agent` and `cases`", file=file
        )
    try:
        suite = Suite.model_validate({**data, "source": file})
    except ValidationError as error:
        first = error.errors()[0]
        case, field = _location(first["loc"], data)
        message = (
            f"unknown check or field {first['loc'][-1]!r}"
            if first["type"] == "extra_forbidden"
            else first["msg"]
        )
        raise EvalError(message, file=file, case=case, field=field) from None
    check_suite(suite, path.parent)
    return suite


def check_suite(suite: Suite, base: Path) -> None:
    """Refuses cases that cannot pass whatever the agent does, and missing cassettes."""
    file = suite.source
    seen: set[str] = set()
    for case in suite.cases:
        if case.id in seen:
            raise EvalError("duplicate case id", file=file, case=case.id, field="id")
        seen.add(case.id)
        expect, state = case.expect, case.state
        totals = state.order_totals()
        for index, refund in enumerate(expect.refunds or []):
            field = f"expect.refunds.{index}"
            if refund.order_id not in totals:
                raise EvalError(
                    f"expects a refund for order {refund.order_id}, which the case's initial "
                    "state does not have",
                    file=file,
                    case=case.id,
                    field=field,
                )
            if Decimal(refund.amount_usd) > totals[refund.order_id]:
                raise EvalError(
                    f"expects a refund of ${refund.amount_usd} on order {refund.order_id} whose "
                    f"total is ${totals[refund.order_id]}: the backend refuses that",
                    file=file,
                    case=case.id,
                    field=field,
                )
        for ticket in expect.ticket_status:
            if ticket not in state.ticket_ids():
                raise EvalError(
                    f"expects a status for ticket {ticket}, which the initial state does not have",
                    file=file,
                    case=case.id,
                    field=f"expect.ticket_status.{ticket}",
                )
        for answer in case.approvals:
            if answer.approver not in suite.approvers:
                raise EvalError(
                    f"approver {answer.approver!r} is not in the suite's `approvers`",
                    file=file,
                    case=case.id,
                    field="approvals",
                )
        _check_model(case, base, file)


def _check_model(case: Case, base: Path, file: str) -> None:
    model = case.model
    if model.source == "scripted" and not model.script:
        raise EvalError(
            "a scripted model needs `script`", file=file, case=case.id, field="model.script"
        )
    if model.source == "provider" and model.spec is None:
        raise EvalError(
            "a provider model needs `spec`", file=file, case=case.id, field="model.spec"
        )
    if model.source == "cassette":
        if not model.cassette:
            raise EvalError(
                "a cassette model needs `cassette`", file=file, case=case.id, field="model.cassette"
            )
        path = (base / model.cassette).resolve()
        if not path.is_file():
            raise EvalError(
                f"cassette {model.cassette} not found (looked for {path})",
                file=file,
                case=case.id,
                field="model.cassette",
            )
