"""A tool's argument schema, from the JSON Schema pinned with the run to what the gate checks.

A run pins each tool's arguments as JSON Schema (Python toolsets derive it from their
pydantic model; MCP servers publish it), so the gate, the tool runner, audits and shadows
all validate a call the same way from the history alone. The schema is compiled once per
process into a strict pydantic model, which gives every call its *canonical* arguments
(the form the call digest is taken of) and its Cedar types:

| JSON Schema                                   | Python      | Cedar       | canonical form |
|-----------------------------------------------|-------------|-------------|----------------|
| ``string`` (pattern, min/maxLength, enum)     | str         | String      | as given       |
| ``integer`` (minimum, maximum ...)            | int         | Long        | a number       |
| ``boolean``                                   | bool        | Bool        | true/false     |
| ``number``, or ``number`` or ``string`` (a    | Decimal     | decimal     | decimal text;  |
|   pydantic Decimal)                           |             |             | ``multipleOf`` |
|                                               |             |             | 10^-k: k places|
| ``array`` of one of those                     | list        | Set<...>    | a list         |
| ``anyOf`` one of those and ``null``           | optional    | optional    | omitted if null|

Extra properties are always refused. Anything else (nested objects, ``oneOf``) has no Cedar
equivalent and is refused when the tool is registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from tiergate.errors import ToolRegistrationError

_NUMBER_BOUNDS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
}
_STRING_BOUNDS = {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"}
_ARRAY_BOUNDS = {"minItems": "min_length", "maxItems": "max_length"}


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ArgumentSchema:
    """A tool's arguments compiled from their JSON Schema.

    Attributes:
        model: Validates a call's arguments; dumping it (JSON mode) gives the canonical form.
        cedar: Each argument's Cedar type and whether the attribute may be absent.
        decimals: The arguments Cedar sees as ``decimal`` extension values.
    """

    model: type[BaseModel]
    cedar: dict[str, tuple[str, bool]]
    decimals: frozenset[str]

    def canonical(self, arguments: Any) -> dict[str, Any]:
        """The canonical arguments; raises pydantic's ValidationError on arguments that do
        not fit, naming each field."""
        validated = self.model.model_validate(arguments)
        # The serializer model_dump wraps: the same output without the wrapper's keyword
        # handling, which cost as much as the dump itself per decision (bench/gate_latency.py).
        dumped: dict[str, Any] = self.model.__pydantic_serializer__.to_python(
            validated, mode="json"
        )
        return dumped


def compile_arguments(tool: str, schema: dict[str, Any]) -> ArgumentSchema:
    """``schema`` (a JSON Schema object) compiled; cached per process by its content."""
    return _compiled(tool, json.dumps(schema, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=1024)
def _compiled(tool: str, text: str) -> ArgumentSchema:
    schema = _inline_refs(json.loads(text))
    if schema.get("type", "object") != "object" or not isinstance(
        schema.get("properties", {}), dict
    ):
        raise ToolRegistrationError(
            f"tool {tool!r}: the argument schema must be a JSON Schema object with properties",
            fix='describe the arguments as {"type": "object", "properties": {...}}',
        )
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    cedar: dict[str, tuple[str, bool]] = {}
    for name, prop in schema.get("properties", {}).items():
        where = f"{tool}.{name}"
        kind, nullable = _field(prop, where)
        python, cedar_type = kind
        has_default = "default" in prop
        optional = nullable or (name not in required and not has_default)
        if optional:
            fields[name] = (python | None, Field(default=prop.get("default")))
        elif has_default:
            fields[name] = (python, Field(default=prop["default"]))
        else:
            fields[name] = (python, ...)
        cedar[name] = (cedar_type, optional)
    model = create_model(_model_name(tool), __base__=_Arguments, **fields)
    decimals = frozenset(n for n, (t, _) in cedar.items() if t == "decimal")
    return ArgumentSchema(model=model, cedar=cedar, decimals=decimals)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with local ``$ref``s (``#/$defs/Name``, as pydantic writes enums) inlined."""
    defs = schema.get("$defs", {})

    def resolve(node: Any, depth: int = 0) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 20:
                target = defs.get(ref.removeprefix("#/$defs/"), {})
                merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, depth + 1)
            return {k: resolve(v, depth) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, depth) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _model_name(tool: str) -> str:
    return "".join(part.title() for part in tool.replace(".", "_").split("_")) + "Arguments"


def _field(prop: dict[str, Any], where: str) -> tuple[tuple[Any, str], bool]:
    """(python type, cedar type) of a property, and whether it may be null."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        kinds = [o for o in options if o.get("type") != "null"]
        nullable = len(kinds) < len(options)
        types = sorted(str(o.get("type")) for o in kinds)
        if types == ["number", "string"]:  # pydantic's spelling of a Decimal
            number = next(o for o in kinds if o.get("type") == "number")
            return _decimal(number), nullable
        if len(kinds) == 1:
            return _single(kinds[0], where), nullable
        raise _unsupported(where, prop)
    return _single(prop, where), False


def _single(prop: dict[str, Any], where: str) -> tuple[Any, str]:
    kind = prop.get("type")
    if "enum" in prop:
        values = tuple(prop["enum"])
        if values and all(isinstance(v, str) for v in values):
            return Literal.__getitem__(values), "String"
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return Literal.__getitem__(values), "Long"
        raise _unsupported(where, prop)
    if kind == "string":
        return Annotated[str, Field(**_bounds(prop, _STRING_BOUNDS))], "String"
    if kind == "integer":
        return Annotated[int, Field(**_bounds(prop, _NUMBER_BOUNDS))], "Long"
    if kind == "boolean":
        return bool, "Bool"
    if kind == "number":
        return _decimal(prop)
    if kind == "array" and isinstance(prop.get("items"), dict):
        inner, inner_cedar = _single(prop["items"], f"{where}[]")
        if inner_cedar.startswith("Set<"):
            raise _unsupported(where, prop)
        unique = [AfterValidator(_unique)] if prop.get("uniqueItems") else []
        bounds = _bounds(prop, _ARRAY_BOUNDS)
        return Annotated[list.__class_getitem__(inner), Field(**bounds), *unique], (
            f"Set<{inner_cedar}>"
        )
    raise _unsupported(where, prop)


def _decimal(prop: dict[str, Any]) -> tuple[Any, str]:
    bounds: dict[str, Any] = {
        ours: Decimal(str(prop[theirs]))
        for theirs, ours in _NUMBER_BOUNDS.items()
        if theirs in prop
    }
    checks: list[Any] = []
    if "multipleOf" in prop:
        step = Decimal(str(prop["multipleOf"]))
        bounds["multiple_of"] = step
        if (places := _places(step)) is not None:
            # A step of 10^-k is a number of places: one spelling per amount ("25" and
            # 25.0 are "25.00"), so equal calls get equal digests.
            checks.append(AfterValidator(_quantizer(places)))
    return Annotated[Decimal, Field(**bounds), *checks], "decimal"


def _places(step: Decimal) -> Decimal | None:
    """``step`` as a quantum when it is 10^-k (k >= 0), else None."""
    exponent = step.normalize().as_tuple().exponent
    if not isinstance(exponent, int) or exponent > 0:
        return None
    quantum = Decimal(1).scaleb(exponent)
    return quantum if quantum == step else None


def _quantizer(quantum: Decimal) -> Callable[[Decimal], Decimal]:
    def quantize(value: Decimal) -> Decimal:
        try:
            return value.quantize(quantum)
        except InvalidOperation:
            # Too many digits to spell with these places: a schema error, not a crash.
            raise ValueError(f"{value} has too many digits for steps of {quantum}") from None

    return quantize


def _bounds(prop: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {ours: prop[theirs] for theirs, ours in names.items() if theirs in prop}


def _unique(values: list[Any]) -> list[Any]:
    if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
        raise ValueError("items must be unique")
    return values


def _unsupported(where: str, prop: dict[str, Any]) -> ToolRegistrationError:
    return ToolRegistrationError(
        f"{where}: schema {json.dumps(prop, sort_keys=True)[:200]} has no Cedar equivalent",
        fix="use strings, integers, booleans, decimals, enums or arrays of those in tool "
        "arguments (str, int, bool, Decimal, Literal[...], list[...] in pydantic)",
    )
