"""Mapping between tool argument schemas and Cedar: schema types and request values.

Pure and deterministic; the gate uses `to_cedar_record` in workflow code.
"""

from __future__ import annotations

import types
import typing
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel

from tiergate.errors import ToolRegistrationError

CedarType = Literal["String", "Long", "Bool", "decimal", "Set<String>", "Set<Long>"]


def cedar_type(annotation: Any, where: str) -> tuple[str, bool]:
    """The Cedar type of a pydantic field annotation, and whether the attribute is optional."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return cedar_type(members[0], where)[0], True
    if origin is Literal:
        values = typing.get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return "String", False
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "Long", False
    if origin in (list, set, frozenset, tuple):
        (inner,) = typing.get_args(annotation)[:1]
        return f"Set<{cedar_type(inner, where)[0]}>", False
    simple = {str: "String", bool: "Bool", int: "Long", Decimal: "decimal"}
    if annotation in simple:
        return simple[annotation], False
    raise ToolRegistrationError(
        f"{where}: type {annotation!r} has no Cedar equivalent",
        fix="use str, int, bool, Decimal, Literal[...] or a list of those in tool arguments",
    )


def record_type(model: type[BaseModel], where: str) -> str:
    """The Cedar record type of a pydantic argument model, e.g. `{ amount_usd: decimal }`."""
    attributes = []
    for name, field in model.model_fields.items():
        ctype, optional = cedar_type(field.annotation, f"{where}.{name}")
        ctype = "__cedar::decimal" if ctype == "decimal" else ctype
        attributes.append(f'"{name}"{"?" if optional else ""}: {ctype}')
    return "{ " + ", ".join(attributes) + " }"


def _cedar_decimal(text: str) -> dict[str, Any]:
    """A decimal's text as Cedar's extension value.

    Cedar's `decimal` wants a point and one to four digits after it: a whole number gets
    ``.0`` (``100`` would otherwise be a policy error, a deny). Anything else Cedar cannot
    hold (five decimals, an exponent) stays as written and fails closed in evaluation.
    """
    if text.lstrip("-").isdigit():
        text += ".0"
    return {"__extn": {"fn": "decimal", "arg": text}}


def to_cedar_value(value: Any) -> Any:
    """A Python value as Cedar JSON: decimals become extension values, None is dropped."""
    if isinstance(value, Decimal):
        return _cedar_decimal(format(value, "f"))
    if isinstance(value, dict):
        return {k: to_cedar_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_cedar_value(v) for v in value]
    return value


@lru_cache(maxsize=256)
def decimal_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of an argument model that Cedar sees as ``decimal`` extension values."""
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if cedar_type(field.annotation, f"{model.__name__}.{name}")[0] == "decimal"
    )


def to_cedar_record(canonical: dict[str, Any], decimals: frozenset[str]) -> dict[str, Any]:
    """Canonical tool arguments (JSON mode) as a Cedar record; None attributes are omitted.

    Built from the canonical form the gate already has rather than from the model: JSON
    mode has turned sets into lists and decimals into their text, so only the ``decimals``
    need wrapping, and each decision is spared a type check per value.
    """
    return {
        name: _cedar_decimal(value) if name in decimals else value
        for name, value in canonical.items()
        if value is not None
    }
