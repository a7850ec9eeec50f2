"""Tool specifications: what the gate knows about a tool before it runs.

A spec is pure data (name, tier, kind, argument schema) so workflow code can validate a
proposed call without importing anything that touches the outside world. The
implementations live in `tiergate.activities`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from tiergate.errors import ToolRegistrationError


class ToolKind(StrEnum):
    """Whether a tool only reads or also changes state somewhere."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the gate sees it.

    Attributes:
        name: Stable dotted name, e.g. ``payments.issue_refund``; also the Cedar action id
            and the suffix of the activity name ``tool__<name>``.
        tier: Registered risk tier 0-4. It is the floor: policies may raise it, never lower it.
        kind: Read or write. Writes carry an idempotency key applied once by the backend.
        args: Pydantic model of the arguments; extra fields are refused.
        emits: Argument fields whose content leaves the system (an email body, a reply);
            output rules such as ``output.contains_pii == false`` check them before the call.
        description: One line shown to models and operators.
        irreversible: Counted against ``max_irreversible_actions``.
        honors_idempotency_key: For a write, whether its backend applies a call's key at most
            once, so a retry after a lost response returns the first answer. Only such
            writes are retried automatically (`workflows._retry`); the default is no, so a
            new write is safe before anyone has thought about it.
    """

    name: str
    tier: int
    kind: ToolKind
    args: type[BaseModel]
    emits: tuple[str, ...] = ()
    description: str = ""
    irreversible: bool = False
    honors_idempotency_key: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.tier, int) or isinstance(self.tier, bool) or not 0 <= self.tier <= 4:
            raise ToolRegistrationError(
                f"tool {self.name!r} has tier {self.tier!r}; every tool needs a risk tier 0-4",
                fix="register the tool with tier=0..4 (see DESIGN.md, risk tiers)",
            )
        if not isinstance(self.kind, ToolKind):
            raise ToolRegistrationError(
                f"tool {self.name!r} has kind {self.kind!r}",
                fix="use ToolKind.READ or ToolKind.WRITE",
            )
        if not (isinstance(self.args, type) and issubclass(self.args, BaseModel)):
            raise ToolRegistrationError(
                f"tool {self.name!r} has no pydantic argument schema",
                fix="pass args=<a pydantic BaseModel subclass>",
            )
        unknown = set(self.emits) - set(self.args.model_fields)
        if unknown:
            raise ToolRegistrationError(
                f"tool {self.name!r} emits unknown fields {sorted(unknown)}",
                fix="list only fields of the argument schema in emits",
            )

    def json_schema(self) -> dict[str, Any]:
        """The argument schema as JSON Schema, for model providers' function calling."""
        return self.args.model_json_schema()


@dataclass(frozen=True)
class ToolRegistry:
    """An immutable set of tool specs addressed by name."""

    specs: dict[str, ToolSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, specs: Iterable[ToolSpec]) -> ToolRegistry:
        by_name: dict[str, ToolSpec] = {}
        for spec in specs:
            if not isinstance(spec, ToolSpec):
                raise ToolRegistrationError(
                    f"{spec!r} is not a ToolSpec", fix="wrap tools in ToolSpec"
                )
            if spec.name in by_name:
                raise ToolRegistrationError(f"tool {spec.name!r} registered twice")
            by_name[spec.name] = spec
        return cls(by_name)

    def get(self, name: str) -> ToolSpec | None:
        return self.specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self.specs.values())
