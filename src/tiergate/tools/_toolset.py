"""Toolsets: a team's own Python functions as governed tools.

    from tiergate import Toolset, ToolCall

    acme = Toolset("acme")                        # tools are named acme.<function>

    @acme.tool(tier=0)
    async def get_invoice(invoice_id: str) -> dict: ...

    @acme.tool(tier=2, kind="write", irreversible=True, honors_idempotency_key=True)
    def refund(args: RefundArgs, call: ToolCall) -> dict: ...

A function's arguments are either one pydantic model parameter (its schema is the tool's)
or typed parameters (a strict model is made from them: extra fields refused, required
parameters required). A parameter annotated `ToolCall` receives the verified call: its run,
step, idempotency key and scoped credential. Registration refuses, naming the fix, a tool
without a tier, a tier outside 0-4, an ``emits`` field the schema lacks, or a parameter it
cannot describe. The tool runner calls the function only after verifying the call where it
executes, then bounds, redacts and records the result like any tool's. A function that
finds its call's idempotency key already applied returns `Replayed(first_answer)`.

Sync functions run in the tool activity's thread. Async functions run on the worker's event
loop, so they may share its clients; like any coroutine there they must not block it. An
async function still running when its activity's start-to-close timeout ends is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from temporalio import activity

from tiergate.control import CapLedger
from tiergate.core import ToolKind
from tiergate.errors import ToolBackendError, ToolRegistrationError
from tiergate.tools._call import Replayed, ToolCall
from tiergate.tools._fixture import CaseFixture
from tiergate.tools._registry import Tool, ToolRegistry

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Implementation:
    """How to call one registered function with a verified call."""

    function: Callable[..., Any]
    model_parameter: str | None  # the parameter that takes the whole argument model
    call_parameter: str | None  # the parameter that takes the ToolCall

    def invoke(self, arguments: BaseModel, call: ToolCall) -> Any:
        if self.model_parameter is not None:
            keywords: dict[str, Any] = {self.model_parameter: arguments}
        else:
            keywords = {name: getattr(arguments, name) for name in type(arguments).model_fields}
        if self.call_parameter is not None:
            keywords[self.call_parameter] = call
        return self.function(**keywords)


class Toolset:
    """A named group of tools (``<name>.<function>``) and the functions that implement them."""

    def __init__(self, name: str) -> None:
        if not name.replace("_", "").replace("-", "").isalnum() or not name[:1].isalpha():
            raise ToolRegistrationError(
                f"toolset name {name!r} is not valid",
                fix="start with a letter; use letters, digits, _ and -",
            )
        self.name = name
        self._tools: dict[str, Tool] = {}
        self._implementations: dict[str, _Implementation] = {}
        self.case_fixture: CaseFixture | None = None

    def fixture(
        self,
        *,
        setup: Callable[[str, dict[str, Any]], Any],
        final_state: Callable[[str], Any] | None = None,
        check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
        known_ids: Callable[[dict[str, Any]], Mapping[str, Collection[str]]] | None = None,
        teardown: Callable[[str], Any] | None = None,
    ) -> CaseFixture:
        """Give eval suites this toolset's fixture (see `tiergate.tools.CaseFixture`):
        cases set its initial state under ``fixtures: {<toolset>: ...}`` and check what
        ``final_state`` returns under ``expect.final_state: {<toolset>: ...}``."""
        self.case_fixture = CaseFixture(setup, final_state, check, known_ids, teardown)
        return self.case_fixture

    def tool(
        self,
        *,
        tier: int | None = None,
        kind: Literal["read", "write"] | ToolKind = ToolKind.READ,
        name: str | None = None,
        description: str | None = None,
        emits: tuple[str, ...] = (),
        irreversible: bool = False,
        honors_idempotency_key: bool = False,
        session_keys: tuple[str, ...] = (),
        session_sums: tuple[str, ...] = (),
        ambiguous_when: Mapping[str, Iterable[str]] | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as ``<toolset>.<name or function name>``; the
        function itself is returned unchanged. ``session_keys`` and ``session_sums`` name
        argument fields the run keeps for policies (``context.session``); ``ambiguous_when``
        result fields whose values make an answer ambiguous (``budgets.adaptive``)."""

        def register(function: F) -> F:
            tool_name = f"{self.name}.{name or function.__name__}"
            if tier is None:
                raise ToolRegistrationError(
                    f"tool {tool_name!r} has no tier",
                    fix="pass tier=0..4 to @toolset.tool (0 reads freely, 4 needs two people)",
                )
            if isinstance(tier, bool) or not isinstance(tier, int) or not 0 <= tier <= 4:
                raise ToolRegistrationError(
                    f"tool {tool_name!r} has tier {tier!r}", fix="a tier is an integer 0..4"
                )
            if tool_name in self._tools:
                raise ToolRegistrationError(
                    f"tool {tool_name!r} registered twice", fix="give one of them name=..."
                )
            args, implementation = _describe(tool_name, function)
            text = description if description is not None else inspect.getdoc(function) or ""
            try:
                spec_kind = ToolKind(kind)
            except ValueError:
                raise ToolRegistrationError(
                    f"tool {tool_name!r} has kind {kind!r}", fix='kind is "read" or "write"'
                ) from None
            try:
                tool = Tool.of(
                    tool_name,
                    tier,
                    spec_kind,
                    args,
                    tuple(emits),
                    text.split("\n\n", 1)[0][:500],
                    irreversible=irreversible,
                    honors_idempotency_key=honors_idempotency_key,
                    session_keys=tuple(session_keys),
                    session_sums=tuple(session_sums),
                    ambiguous_when=ambiguous_when,
                )
            except ValidationError as error:
                raise ToolRegistrationError(
                    f"tool {tool_name!r} cannot be governed: {_first(error)}",
                    fix="emits names fields of the tool's arguments; see the message",
                ) from None
            self._tools[tool_name] = tool
            self._implementations[tool_name] = implementation
            return function

        return register

    @property
    def tools(self) -> ToolRegistry:
        return ToolRegistry.of(self._tools.values())

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def invoke(self, name: str, arguments: BaseModel, call: ToolCall) -> Any:
        """What ``name``'s function returns for a verified call (maybe an awaitable)."""
        implementation = self._implementations.get(name)
        if implementation is None:
            raise ToolBackendError(f"toolset {self.name} has no tool {name}")
        return implementation.invoke(arguments, call)


class ToolsetBackend:
    """Toolsets as a worker's tool backend: each verified call goes to its function.

    Async functions run on ``loop``, the worker's (the tool activity's thread waits for
    them); without one, on a loop of their own per call. With ``caps``, the call's caps are
    charged there before the function runs (see `tiergate.control.CapLedger`) and given
    back when it refuses the call; without, the functions count them (``call.caps``) in
    their own transaction, as the demo's store does.
    """

    def __init__(
        self,
        toolsets: list[Toolset],
        loop: asyncio.AbstractEventLoop | None = None,
        deadline: Callable[[], float | None] | None = None,
        caps: CapLedger | None = None,
    ) -> None:
        self.owners = {tool.name: toolset for toolset in toolsets for tool in toolset}
        self.loop = loop
        self.caps = caps
        # Seconds an async function may take: the activity's start-to-close timeout. After
        # it the activity has timed out anyway; the coroutine is cancelled so a hung one
        # does not hold the activity's thread for ever.
        self.deadline = deadline or _activity_deadline

    def run(self, tool: Tool, arguments: BaseModel, call: ToolCall) -> tuple[dict[str, Any], bool]:
        owner = self.owners.get(tool.name)
        if owner is None:
            raise ToolBackendError(f"no toolset of this worker has {tool.name}")
        with charged(self.caps, call, arguments):
            result = owner.invoke(tool.name, arguments, call)
            if inspect.isawaitable(result):
                result = self._wait(result)
        if isinstance(result, Replayed):
            return _output(tool.name, result.output), True
        return _output(tool.name, result), False

    def _wait(self, awaitable: Any) -> Any:
        seconds = self.deadline()
        if self.loop is not None and self.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), self.loop)
            try:
                return future.result(timeout=seconds)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise TimeoutError(
                    f"the tool function did not return within {seconds:g}s"
                ) from None
        return asyncio.run(asyncio.wait_for(_as_coroutine(awaitable), seconds))


def charged(
    caps: CapLedger | None, call: ToolCall, arguments: BaseModel
) -> AbstractContextManager[None]:
    """Around a call's effect: its caps charged in ``caps`` (see `CapLedger.charging`);
    nothing without a ledger, for a backend that counts them itself."""
    if caps is None:
        return nullcontext()
    amounts = arguments.model_dump(mode="json")
    return caps.charging(call.agent, call.caps, amounts, call.idempotency_key)


def _describe(
    tool_name: str, function: Callable[..., Any]
) -> tuple[type[BaseModel], _Implementation]:
    """The argument model of ``function`` and how to call it."""
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError) as error:
        raise ToolRegistrationError(
            f"tool {tool_name!r}: cannot read its type hints ({error})",
            fix="import the types its parameters are annotated with at module level",
        ) from None
    model_parameter = call_parameter = None
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolRegistrationError(
                f"tool {tool_name!r}: *{parameter.name} cannot be described to the model",
                fix="name every argument",
            )
        annotation = hints.get(parameter.name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty:
            raise ToolRegistrationError(
                f"tool {tool_name!r}: parameter {parameter.name!r} has no type",
                fix="annotate it (the argument schema is built from the annotations)",
            )
        if annotation is ToolCall:
            call_parameter = parameter.name
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if model_parameter is not None or fields:
                raise ToolRegistrationError(
                    f"tool {tool_name!r}: a pydantic model parameter must be its only argument",
                    fix="put every argument in the model (the ToolCall parameter aside)",
                )
            model_parameter, model = parameter.name, annotation
        else:
            if model_parameter is not None:
                raise ToolRegistrationError(
                    f"tool {tool_name!r}: a pydantic model parameter must be its only argument",
                    fix="put every argument in the model (the ToolCall parameter aside)",
                )
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (annotation, default)
    if model_parameter is None:
        model = create_model(
            f"{tool_name.replace('.', '_')}_arguments",
            __config__=ConfigDict(extra="forbid", frozen=True),
            **fields,
        )
    elif model.model_config.get("extra") != "forbid":
        raise ToolRegistrationError(
            f"tool {tool_name!r}: its argument model {model.__name__} accepts extra fields",
            fix='set model_config = ConfigDict(extra="forbid") on it',
        )
    return model, _Implementation(function, model_parameter, call_parameter)


def _activity_deadline() -> float | None:
    if not activity.in_activity():
        return None
    timeout = activity.info().start_to_close_timeout
    return timeout.total_seconds() if timeout else None


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def _output(tool_name: str, result: Any) -> dict[str, Any]:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, dict):
        return result
    raise ToolBackendError(
        f"tool {tool_name} returned {type(result).__name__}, not a dict: return a dict "
        "(or a pydantic model) of what the model may see"
    )


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    return str(first.get("msg", error))
