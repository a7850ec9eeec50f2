"""Tool specifications: what the gate knows about a tool before it runs, as pinnable data.

A spec is plain data (name, tier, kind, argument JSON Schema ...) so it travels in the
bundle a run is pinned to: the workflow's gate, audits, timelines and shadows read specs
from the run's history, never from the code of whichever process reads it. How a tool is
implemented is the worker's business (`tiergate.tools`).
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiergate.core._arguments import ArgumentSchema, compile_arguments
from tiergate.errors import ToolRegistrationError


class ToolKind(StrEnum):
    """Whether a tool only reads or also changes state somewhere."""

    READ = "read"
    WRITE = "write"


class ToolSpec(BaseModel):
    """A tool as the gate sees it.

    Attributes:
        name: Stable dotted name, ``<toolset>.<tool>`` (``acme.refund``); also
            the Cedar action id and the suffix of the activity name ``tool__<name>``.
        tier: Registered risk tier 0-4. It is the floor: policies may raise it, never lower it.
        kind: Read or write. Writes carry an idempotency key applied once by the backend.
        arguments: JSON Schema of the arguments (an object); extra fields are refused.
        emits: Argument fields whose content leaves the system (an email body, a reply);
            output rules such as ``output.contains_pii == false`` check them before the call.
        description: One line shown to models and operators.
        irreversible: Counted against ``max_irreversible_actions``.
        honors_idempotency_key: For a write, whether its backend applies a call's key at most
            once, so a retry after a lost response returns the first answer. Only such
            writes are retried automatically (`workflows._retry`); the default is no, so a
            new write is safe before anyone has thought about it.
        session_keys: Argument fields (strings) whose values the run remembers
            from calls that took effect, for policies: ``context.session.seen[tool][field]``
            (`tiergate.core.Session`).
        session_sums: Numeric argument fields (decimal or integer) the run sums over calls
            that took effect: ``context.session.sums[tool][field]`` and ``sums_after``.
        ambiguous_when: Result fields and the values that make an answer ambiguous (an
            order status ``unknown``): such a result counts toward ``budgets.adaptive``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$", max_length=200)]
    tier: int
    kind: ToolKind
    arguments: dict[str, Any]
    emits: tuple[str, ...] = ()
    description: str = ""
    irreversible: bool = False
    honors_idempotency_key: bool = False
    session_keys: tuple[str, ...] = ()
    session_sums: tuple[str, ...] = ()
    ambiguous_when: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _registrable(cls, data: Any) -> Any:
        # Raised as ToolRegistrationError (not a ValidationError) so a team registering a
        # tool reads what to fix, even for values no type checker would let through.
        if not isinstance(data, dict):
            return data
        name, tier = data.get("name"), data.get("tier")
        if not isinstance(tier, int) or isinstance(tier, bool) or not 0 <= tier <= 4:
            raise ToolRegistrationError(
                f"tool {name!r} has tier {tier!r}; every tool needs a risk tier 0-4",
                fix="register the tool with tier=0..4 (see DESIGN.md, risk tiers)",
            )
        if data.get("kind") not in tuple(ToolKind):
            raise ToolRegistrationError(
                f"tool {name!r} has kind {data.get('kind')!r}",
                fix="use ToolKind.READ or ToolKind.WRITE",
            )
        if not isinstance(data.get("arguments"), dict):
            raise ToolRegistrationError(
                f"tool {name!r} has no argument schema",
                fix="pass the arguments' JSON Schema (a pydantic model's model_json_schema())",
            )
        return data

    def model_post_init(self, context: Any) -> None:
        # Compiled here, once per spec (and once per process for each schema's content):
        # it refuses argument types Cedar cannot hold, and the gate uses it on every call.
        compiled = compile_arguments(self.name, self.arguments)
        unknown = set(self.emits) - set(compiled.cedar)
        if unknown:
            raise ToolRegistrationError(
                f"tool {self.name!r} emits unknown fields {sorted(unknown)}",
                fix="list only fields of the argument schema in emits",
            )
        for declared, kinds, what in (
            (self.session_keys, ("String",), "session_keys (string fields)"),
            (self.session_sums, ("decimal", "Long"), "session_sums (decimal or integer fields)"),
        ):
            wrong = sorted(
                f for f in declared if compiled.cedar.get(f, ("", False))[0] not in kinds
            )
            if wrong:
                raise ToolRegistrationError(
                    f"tool {self.name!r} lists {wrong} in {what.split(' ')[0]}, which are not "
                    f"{what.split(' ', 1)[1].strip('()')} of its arguments",
                    fix=f"list in {what}",
                )
        self.__dict__["argument_schema"] = compiled

    @cached_property
    def argument_schema(self) -> ArgumentSchema:
        """The compiled argument schema (set when the spec is made)."""
        return compile_arguments(self.name, self.arguments)

    def canonical_arguments(self, arguments: Any) -> dict[str, Any]:
        """The call's canonical arguments; raises ValidationError when they do not fit."""
        return self.argument_schema.canonical(arguments)
