"""The tools a worker can run: each one's spec (what the gate sees) and its argument model.

A worker is given its tools; nothing in tiergate holds a global list. The specs go into the
bundle every run is pinned to (`tiergate.config`), and the tool runner finds a call's
implementation here by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from tiergate.core import ToolKind, ToolSpec
from tiergate.errors import ToolRegistrationError


@dataclass(frozen=True)
class Tool:
    """A tool of this worker.

    Attributes:
        spec: What the gate knows about the tool, pinned with every run.
        args: The pydantic model the implementation receives; its JSON Schema is the spec's.
    """

    spec: ToolSpec
    args: type[BaseModel]

    @classmethod
    def of(
        cls,
        name: str,
        tier: int,
        kind: ToolKind,
        args: type[BaseModel],
        emits: tuple[str, ...] = (),
        description: str = "",
        *,
        irreversible: bool = False,
        honors_idempotency_key: bool = False,
        session_keys: tuple[str, ...] = (),
        session_sums: tuple[str, ...] = (),
        ambiguous_when: Mapping[str, Iterable[str]] | None = None,
    ) -> Tool:
        """A tool whose argument schema is ``args``' JSON Schema; refuses what the gate could
        not govern (no tier, no schema, unknown emitted fields) with the fix."""
        if not (isinstance(args, type) and issubclass(args, BaseModel)):
            raise ToolRegistrationError(
                f"tool {name!r} has no pydantic argument schema",
                fix="pass args=<a pydantic BaseModel subclass>",
            )
        spec = ToolSpec.model_validate(
            {
                "name": name,
                "tier": tier,
                "kind": kind,
                "arguments": args.model_json_schema(),
                "emits": emits,
                "description": description,
                "irreversible": irreversible,
                "honors_idempotency_key": honors_idempotency_key,
                "session_keys": tuple(session_keys),
                "session_sums": tuple(session_sums),
                "ambiguous_when": {k: tuple(v) for k, v in (ambiguous_when or {}).items()},
            }
        )
        return cls(spec, args)

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ToolRegistry:
    """An immutable set of tools addressed by name."""

    tools: dict[str, Tool] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[Tool]) -> ToolRegistry:
        by_name: dict[str, Tool] = {}
        for tool in tools:
            if not isinstance(tool, Tool):
                raise ToolRegistrationError(f"{tool!r} is not a Tool", fix="build it with Tool.of")
            if tool.name in by_name:
                raise ToolRegistrationError(f"tool {tool.name!r} registered twice")
            by_name[tool.name] = tool
        return cls(by_name)

    @property
    def specs(self) -> dict[str, ToolSpec]:
        """Every tool's spec by name: what a run is pinned to."""
        return {name: tool.spec for name, tool in self.tools.items()}

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self.tools.values())
