"""The budget ledger: what a run has spent, and whether it may spend more.

Pure and serializable, so it can be checked in workflow code before every model call and
tool call and carried across continue-as-new. Past a limit the answer is a BudgetStop,
never "try harder".
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core._agent import Budgets, Price
from tiergate.core._payloads import TokenUsage
from tiergate.core._records import BudgetStop, Usage


def model_cost(usage: TokenUsage, price: Price) -> float:
    read = price.input_per_mtok if price.cache_read_per_mtok is None else price.cache_read_per_mtok
    write = (
        price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    )
    return round(
        usage.input_tokens * price.input_per_mtok / 1e6
        + usage.output_tokens * price.output_per_mtok / 1e6
        + usage.cache_read_tokens * read / 1e6
        + usage.cache_write_tokens * write / 1e6,
        8,
    )


def answer_cost(
    pricing: dict[str, Price], requested: str, reported: str, usage: TokenUsage
) -> float:
    """One model answer's cost: at the price of the model that answered when the table has
    it (a provider that served another model bills for that one), else the requested one's.
    Shared by the run's ledger and the timeline of a run still in flight, so both agree."""
    return model_cost(usage, pricing.get(reported) or pricing[requested])


@dataclass(frozen=True)
class ActivityFailure:
    """How an activity failed for good, as far as budgets care (Temporal-free).

    Attributes:
        cause: The failure's message.
        attempts: The attempts its retry policy allowed.
        attempts_exhausted: Every allowed attempt failed.
        timed_out: It ran out of time (its timeout, bounded by the run's wall time).
    """

    cause: str
    attempts: int = 1
    attempts_exhausted: bool = False
    timed_out: bool = False


class BudgetLedger(BaseModel):
    """Running totals of one run."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    denials: int = 0
    invalid_proposals: int = 0
    call_counts: dict[str, int] = Field(default_factory=dict)
    #: ``budgets.adaptive``: ambiguous results so far, the limits it shrank, and the
    #: fingerprints of answers and errors seen (a repeat of one is ambiguous).
    ambiguous: int = 0
    tool_calls_limit: int | None = None
    model_calls_limit: int | None = None
    seen_answers: list[str] = Field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )

    def charge_model(self, usage: TokenUsage, cost_usd: float, attempt: int) -> None:
        self.model_calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.cost_usd = round(self.cost_usd + cost_usd, 8)
        self.retries += max(attempt - 1, 0)

    def charge_tool(self, digest: str, attempt: int) -> None:
        self.tool_calls += 1
        self.call_counts[digest] = self.call_counts.get(digest, 0) + 1
        self.retries += max(attempt - 1, 0)

    def charge_failed_attempts(self, attempts: int) -> None:
        """An activity that failed for good used `attempts` tries, all of them retries-worthy."""
        self.retries += max(attempts - 1, 0)

    def remaining_retries(self, limits: Budgets) -> int:
        return max(limits.max_retries - self.retries, 0)

    def remaining_tokens(self, limits: Budgets) -> int:
        return max(limits.max_total_tokens - self.total_tokens, 0)

    def check_model_call(self, limits: Budgets, elapsed_seconds: float) -> BudgetStop | None:
        """None if one more model call is within every limit, else the first limit hit."""
        return (
            _at_least("total_tokens", self.total_tokens, limits.max_total_tokens, "tokens")
            or _shrinkable(
                "model_calls",
                self.model_calls,
                limits.max_model_calls,
                self.model_calls_limit,
                self.ambiguous,
            )
            or self._shared(limits, elapsed_seconds)
        )

    def check_tool_call(
        self, limits: Budgets, elapsed_seconds: float, digest: str
    ) -> BudgetStop | None:
        """None if this tool call is within every limit, else the first limit hit.

        The same call (same digest) made again counts as a loop once it exceeds
        ``max_identical_tool_calls``.
        """
        return (
            _shrinkable(
                "tool_calls",
                self.tool_calls,
                limits.max_tool_calls,
                self.tool_calls_limit,
                self.ambiguous,
            )
            or _next_exceeds(
                "identical_tool_calls",
                self.call_counts.get(digest, 0),
                limits.max_identical_tool_calls,
                note="the same call with the same arguments again: a loop",
            )
            or self._shared(limits, elapsed_seconds)
        )

    def _shared(self, limits: Budgets, elapsed_seconds: float) -> BudgetStop | None:
        return (
            _at_least("cost_usd", self.cost_usd, limits.max_cost_usd, "USD")
            or _over("retries", self.retries, limits.max_retries)
            or _at_least(
                "wall_time_seconds", round(elapsed_seconds, 3), limits.max_wall_time_seconds, "s"
            )
        )

    def check_irreversible(self, limits: Budgets, done: int, tool: str) -> BudgetStop | None:
        """None if one more irreversible action (refund, email, deletion) is within the run's
        ``max_irreversible_actions``, given ``done`` so far, else the stop."""
        cap = limits.max_irreversible_actions
        if cap is None or done < cap:
            return None
        return BudgetStop(
            limit="irreversible_actions",
            limit_value=cap,
            used=done,
            over_by=1,
            message=f"irreversible_actions: {tool} would be irreversible action {done + 1} of "
            f"this run; max_irreversible_actions={cap}",
        )

    def check_tool_batch(
        self, limits: Budgets, size: int, irreversible: int, irreversible_done: int
    ) -> BudgetStop | None:
        """None if an answer's ``size`` tool calls, ``irreversible`` of them irreversible,
        all fit what the run has left (the tool-call limit in force, shrunk or not, and
        ``max_irreversible_actions`` after ``irreversible_done``), else the stop."""
        configured = limits.max_tool_calls
        limit = (
            configured if self.tool_calls_limit is None else min(configured, self.tool_calls_limit)
        )
        if self.tool_calls + size > limit:
            stop = _batch_over("tool_calls", self.tool_calls, limit, size)
            return stop.model_copy(update={"shrunk": limit < configured})
        cap = limits.max_irreversible_actions
        if cap is not None and irreversible and irreversible_done + irreversible > cap:
            return _batch_over("irreversible_actions", irreversible_done, cap, irreversible)
        return None

    def count_invalid(self, limits: Budgets) -> bool:
        """Counts an invalid proposal; True once the run has had ``max_invalid_proposals``."""
        self.invalid_proposals += 1
        return self.invalid_proposals >= limits.max_invalid_proposals

    def count_denial(self, limits: Budgets) -> bool:
        """Counts a denial by the gate; True once the run has had ``max_denials``."""
        self.denials += 1
        return self.denials >= limits.max_denials

    def failed_activity(
        self, limits: Budgets, name: str, failure: ActivityFailure, elapsed_seconds: float
    ) -> BudgetStop | None:
        """The limit an activity that failed for good ran into, charging its attempts:
        retries once every attempt allowed was used, wall time once it timed out past the
        run's budget; None when the failure was no budget's doing."""
        if failure.attempts_exhausted:
            self.charge_failed_attempts(failure.attempts)
            return BudgetStop(
                limit="retries",
                limit_value=limits.max_retries,
                used=self.retries,
                over_by=1,
                message=f"retries: {name} failed {failure.attempts} times "
                f"({failure.cause}); one more attempt would exceed max_retries={limits.max_retries}",
            )
        if failure.timed_out and elapsed_seconds >= limits.max_wall_time_seconds:
            return BudgetStop(
                limit="wall_time_seconds",
                limit_value=limits.max_wall_time_seconds,
                used=round(elapsed_seconds, 3),
                over_by=round(elapsed_seconds - limits.max_wall_time_seconds, 3),
                message=f"wall_time_seconds: {name} ran past the run's wall-time budget",
            )
        return None

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            total_tokens=self.total_tokens,
            model_calls=self.model_calls,
            tool_calls=self.tool_calls,
            retries=self.retries,
            denials=self.denials,
            invalid_proposals=self.invalid_proposals,
        )


def _at_least(limit: str, used: float, maximum: float, unit: str) -> BudgetStop | None:
    if used < maximum:
        return None
    return BudgetStop(
        limit=limit,
        limit_value=maximum,
        used=used,
        over_by=round(used - maximum, 8),
        message=f"{limit}: used {used} {unit} of {maximum} {unit} (over by {round(used - maximum, 8)})",
    )


def _over(limit: str, used: float, maximum: float) -> BudgetStop | None:
    if used <= maximum:
        return None
    return BudgetStop(
        limit=limit,
        limit_value=maximum,
        used=used,
        over_by=used - maximum,
        message=f"{limit}: used {used} of {maximum} (over by {used - maximum})",
    )


def _shrinkable(
    limit: str, used: int, configured: int, shrunk: int | None, ambiguous: int
) -> BudgetStop | None:
    """`_next_exceeds` against the limit in force: the configured one, or the lower one
    ``budgets.adaptive`` shrank it to."""
    if shrunk is None or shrunk >= configured:
        return _next_exceeds(limit, used, configured)
    note = f"shrunk from {configured} after {ambiguous} ambiguous result{'s' * (ambiguous != 1)} (budgets.adaptive)"
    stop = _next_exceeds(limit, used, shrunk, note=note)
    return stop.model_copy(update={"shrunk": True}) if stop is not None else None


def _next_exceeds(limit: str, used: int, maximum: int, note: str = "") -> BudgetStop | None:
    if used < maximum:
        return None
    suffix = f"; {note}" if note else ""
    return BudgetStop(
        limit=limit,
        limit_value=maximum,
        used=used,
        over_by=used + 1 - maximum,
        message=f"{limit}: {used} of {maximum} used, one more would exceed it by "
        f"{used + 1 - maximum}{suffix}",
    )


def _batch_over(limit: str, used: int, maximum: int, size: int) -> BudgetStop:
    over = used + size - maximum
    return BudgetStop(
        limit=limit,
        limit_value=maximum,
        used=used,
        over_by=over,
        message=f"{limit}: {used} of {maximum} used; an answer with {size} of them would "
        f"exceed it by {over}, so none of its calls ran",
    )
