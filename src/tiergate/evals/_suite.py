"""The eval suite format: versioned cases with known-good outcomes, checked before anything runs.

A suite is YAML. Each case gives the run's input, the initial state of the tool backends
(per toolset, through its fixture),
where the model's answers come from, the approvals people would give, and checks in the
seed's three layers — schema, behavior, outcome — plus cost, token and step limits. A suite
that names an unknown check, expects a state its own initial state makes impossible, or
points at a missing cassette is refused with the file, the case and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tiergate.core import ModelSpec, Outcome
from tiergate.errors import EvalError
from tiergate.tools import CaseFixture


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    ids_exist: bool = Field(
        default=True,
        description="Every id a proposal names is one the case's fixtures know (their known_ids).",
    )
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
    final_state: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per toolset, what its fixture's final_state must hold: a mapping holds "
        "at least the keys given (each matching), a list matches item by item, anything else "
        "is equal.",
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
    fixtures: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per toolset, the initial state its fixture's setup receives ({} if unsaid).",
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


def load_suite(path: Path, fixtures: Mapping[str, CaseFixture] | None = None) -> Suite:
    """Parses and checks a suite file (and its cases' fixture states, given the fixtures a
    worker offers); every problem is an EvalError naming where it is."""
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
    if fixtures is not None:
        check_fixtures(suite, fixtures)
    return suite


def check_fixtures(suite: Suite, fixtures: Mapping[str, CaseFixture]) -> None:
    """Every toolset a case seeds or reads has a fixture that can, and every fixture finds
    its case possible (its ``check``), before anything runs."""
    for case in suite.cases:
        for field_name, toolsets in (
            ("fixtures", case.fixtures),
            ("expect.final_state", case.expect.final_state),
        ):
            for toolset in toolsets:
                fixture = fixtures.get(toolset)
                reads = field_name == "expect.final_state"
                if fixture is None or (reads and fixture.final_state is None):
                    what = "no final_state reader" if fixture is not None else "no fixture"
                    raise EvalError(
                        f"toolset {toolset!r} has {what} in this worker (fixtures of: "
                        f"{sorted(fixtures) or 'none'}); give it one with "
                        f"{toolset}.fixture(setup=..., final_state=...)",
                        file=suite.source,
                        case=case.id,
                        field=f"{field_name}.{toolset}",
                    )
        for name, fixture in fixtures.items():
            if fixture.check is None:
                continue
            expected = case.expect.final_state.get(name, {})
            try:
                fixture.check(case.fixtures.get(name, {}), expected)
            except ValueError as error:
                field = "expect.final_state" if name in case.expect.final_state else "fixtures"
                raise EvalError(
                    _reason(error), file=suite.source, case=case.id, field=f"{field}.{name}"
                ) from None


def _reason(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(error)


def check_suite(suite: Suite, base: Path) -> None:
    """Refuses cases that cannot pass whatever the agent does, and missing cassettes."""
    file = suite.source
    seen: set[str] = set()
    for case in suite.cases:
        if case.id in seen:
            raise EvalError("duplicate case id", file=file, case=case.id, field="id")
        seen.add(case.id)
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
