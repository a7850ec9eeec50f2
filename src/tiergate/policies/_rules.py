"""Compile the seed config's inline rules (`condition` + `on_fail`) into Cedar policies.

A condition states what must hold; `on_fail` says what happens when it does not:

* `escalate_to_human` / `escalate_to_dual` -> a permit annotated `@approval(...)` that matches
  when the condition fails, raising the call to tier 3 / 4;
* `block` / `block_and_alert` -> a `forbid ... unless { condition }` (final), the latter
  annotated `@alert` so the decision also raises an alert event.

`input.*` conditions gate a tool call before it runs; `output.*` conditions are written
against the `tiergate.emit` action, asked for every piece of content that leaves the system.
The grammar is deliberately small: comparisons of a path with a literal, `and`, `or`, `not`
and parentheses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tiergate.core import EMIT_ACTION, PolicyRule, ToolSpec
from tiergate.errors import ConfigError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_OUTPUT_FIELDS = {"contains_pii": "Bool", "size_bytes": "Long"}
_DECIMAL_METHODS = {
    "<": "lessThan",
    "<=": "lessThanOrEqual",
    ">": "greaterThan",
    ">=": "greaterThanOrEqual",
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


class _ConditionCompiler:
    """Recursive-descent compiler from one condition string to a Cedar expression."""

    def __init__(self, rule: PolicyRule, tools: Mapping[str, ToolSpec], where: str) -> None:
        self.rule, self.tools, self.where = rule, tools, where
        self.tokens = self._tokenize(rule.condition)
        self.pos = 0
        self.scopes: set[str] = set()

    def fail(self, reason: str) -> ConfigError:
        return ConfigError(
            f"{reason} in condition {self.rule.condition!r}",
            field=self.where,
            fix="write `input.<arg> <op> <literal>` or `output.<fact> <op> <literal>`, "
            "joined with and/or/not",
        )

    def _tokenize(self, text: str) -> list[_Token]:
        tokens, pos = [], 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise self.fail(f"unexpected text {text[pos : pos + 20]!r}")
            kind = match.lastgroup or ""
            tokens.append(_Token(kind, match.group(kind)))
            pos = match.end()
        return tokens

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end")
        self.pos += 1
        return token

    def compile(self) -> str:
        expr = self.or_expr()
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return expr

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while (t := self.peek()) and t.text in ("or", "||"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while (t := self.peek()) and t.text in ("and", "&&"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"

    def not_expr(self) -> str:
        if (t := self.peek()) and t.text in ("not", "!"):
            self.take()
            return f"!({self.not_expr()})"
        if (t := self.peek()) and t.text == "(":
            self.take()
            inner = self.or_expr()
            if self.take().text != ")":
                raise self.fail("missing `)`")
            return inner
        return self.comparison()

    def comparison(self) -> str:
        path = self.take()
        if path.kind != "word" or "." not in path.text:
            raise self.fail(f"expected input.<field> or output.<field>, got {path.text!r}")
        cedar_path, ctype = self.resolve(path.text)
        op = self.peek()
        if op is None or op.text not in ("==", "!=", "<", "<=", ">", ">="):
            if ctype != "Bool":
                raise self.fail(f"{path.text} is {ctype}, not a condition by itself")
            return cedar_path
        self.take()
        return self.compare(cedar_path, ctype, op.text, self.take(), path.text)

    def resolve(self, dotted: str) -> tuple[str, str]:
        scope, _, name = dotted.partition(".")
        self.scopes.add(scope)
        if scope == "output":
            if name not in _OUTPUT_FIELDS:
                raise self.fail(f"unknown output fact {name!r} (known: {sorted(_OUTPUT_FIELDS)})")
            return f"context.output.{name}", _OUTPUT_FIELDS[name]
        if scope != "input":
            raise self.fail(f"paths start with input. or output., not {scope!r}")
        spec = self.tools.get(self.rule.tool or "")
        if spec is None:
            raise self.fail("input.* conditions need `tool:` naming a registered tool")
        cedar = spec.argument_schema.cedar
        if name not in cedar:
            raise self.fail(f"{spec.name} has no argument {name!r}")
        return f"context.input.{name}", cedar[name][0]

    def compare(self, path: str, ctype: str, op: str, literal: _Token, name: str) -> str:
        if ctype == "decimal" and literal.kind == "num":
            value = _decimal_literal(literal.text)
            if op in _DECIMAL_METHODS:
                return f'{path}.{_DECIMAL_METHODS[op]}(decimal("{value}"))'
            return f'{path} {op} decimal("{value}")'
        if ctype == "Long" and literal.kind == "num" and "." not in literal.text:
            return f"{path} {op} {literal.text}"
        if ctype == "Bool" and literal.text in ("true", "false") and op in ("==", "!="):
            return f"{path} {op} {literal.text}"
        if ctype == "String" and literal.kind == "str" and op in ("==", "!="):
            return f'{path} {op} "{_unquote(literal.text)}"'
        raise self.fail(f"cannot compare {name} ({ctype}) with {literal.text!r} using {op}")


def _decimal_literal(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the tokenizer only passes numbers
        raise ConfigError(f"bad number {text!r}") from None
    # Cedar decimals need a point and at most four places.
    return format(value.quantize(Decimal("0.01")) if value == value.to_integral() else value, "f")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body.replace("\\'", "'").replace('"', '\\"')


def _cedar_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def compile_rule(rule: PolicyRule, tools: Mapping[str, ToolSpec], where: str) -> str:
    """One inline rule as Cedar text with `@id` set to the rule's id."""
    compiler = _ConditionCompiler(rule, tools, where)
    condition = compiler.compile()
    if compiler.scopes == {"input", "output"}:
        raise compiler.fail("a condition checks either input.* or output.*, not both")
    is_output = compiler.scopes == {"output"}
    if rule.tool is not None and rule.tool not in tools:
        raise compiler.fail(f"unknown tool {rule.tool!r}")
    action = f'Action::"{EMIT_ACTION}"' if is_output else f'Action::"{rule.tool}"'
    resource = f'resource == Tool::"{rule.tool}"' if rule.tool else "resource"
    scope = f"principal, action == {action}, {resource}"
    header = [
        f'@id("{rule.id}")',
        f'@description("inline rule: {_cedar_string(rule.condition)} (on_fail: {rule.on_fail})")',
    ]
    if rule.on_fail in ("escalate_to_human", "escalate_to_dual"):
        if is_output:
            raise ConfigError(
                f"on_fail {rule.on_fail!r} cannot apply to an output rule",
                field=where.replace(".condition", ".on_fail"),
                fix="output rules block (`block` or `block_and_alert`)",
            )
        level = "human" if rule.on_fail == "escalate_to_human" else "dual"
        header.append(f'@approval("{level}")')
        return "\n".join([*header, f"permit({scope})", f"when {{ !({condition}) }};"])
    if rule.on_fail == "block_and_alert":
        header.append(f'@alert("{rule.id}")')
    return "\n".join([*header, f"forbid({scope})", f"unless {{ {condition} }};"])


def compile_rules(rules: list[PolicyRule], tools: Mapping[str, ToolSpec]) -> str:
    """All inline rules of a config as Cedar text, in order."""
    return "\n\n".join(
        compile_rule(rule, tools, f"agent.policy.rules[{index}].condition")
        for index, rule in enumerate(rules)
    )
