"""One exception tree for tiergate.

Developer misuse (a bad config, a policy that does not parse) is kept apart from runtime
outcomes (a denial, an exhausted budget), and every error carries what was wrong and how to
fix it, so the message alone is enough to act on.
"""

from __future__ import annotations


class TiergateError(Exception):
    """Base of every error tiergate raises on purpose."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} (fix: {fix})" if fix else message)


class ConfigError(TiergateError):
    """An agent config is invalid: names the file, the field and the reason."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.field = field
        where = ", ".join(p for p in (file and f"file {file}", field and f"field {field}") if p)
        super().__init__(f"{where}: {message}" if where else message, fix=fix)


class PolicyError(TiergateError):
    """A Cedar policy file does not parse or does not validate against the schema."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if file and line else (file or "")
        super().__init__(f"{where}: {message}" if where else message, fix=fix)


class ToolRegistrationError(TiergateError):
    """A tool was registered without a valid tier, kind or argument schema."""


class RunInputError(TiergateError):
    """A run's input failed its schema; the run fails closed before any model call."""


class ToolBackendError(TiergateError):
    """A tool backend refused or failed a call; the step records it and no effect is assumed."""


class McpServerError(TiergateError):
    """An MCP server could not be reached, did not answer in time, or broke its session.

    Raised from a tool activity it is a transient fault: the call is retried by the usual
    table (reads, and writes that honor their idempotency key), then recorded as failed.
    Raised at worker start it refuses the worker, naming the server.
    """


class CapReachedError(ToolBackendError):
    """A cap's window is used up: the call did nothing. ``cap`` names the cap."""

    def __init__(self, cap: str, message: str) -> None:
        super().__init__(message, fix=f"wait for the next window of cap {cap}, or raise it")
        self.cap = cap


class CredentialRefusedError(ToolBackendError):
    """A tool backend refused a credential: names why (audience, run, step, expiry...)."""


class UnverifiedToolCallError(TiergateError):
    """The tool runner could not verify a call from what the worker trusts; nothing ran.

    Attributes:
        check: Which check failed: ``execution``, ``bundle``, ``tool``, ``arguments``,
            ``policy``, ``kill_switch`` or ``approvals``.
    """

    def __init__(self, check: str, reason: str) -> None:
        self.check = check
        super().__init__(
            f"tool call refused by the runner ({check}): {reason}",
            fix="tools act only for calls of a tiergate run that its gate and approvers allowed",
        )


class PayloadTooLargeError(TiergateError):
    """Data entering the run exceeds a size limit Temporal or tiergate enforces."""


class HistoryError(TiergateError):
    """A history that cannot be read as a tiergate run: names the source and what is wrong."""


class ApproverError(TiergateError):
    """An approver cannot be added, found or used."""


class ApprovalRefusedError(TiergateError):
    """The run refused an answer; ``code`` says why (e.g. ``not_authorized``)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


class NotWaitingError(TiergateError):
    """The run has no pending approval (it finished, moved on, or does not exist)."""


class ReviewError(TiergateError):
    """A review cannot be found or recorded."""


class StateError(TiergateError):
    """tiergate's shared store (``TIERGATE_DATABASE_URL``) is misnamed, unreachable, or
    kept a transaction from committing; names the database (password masked)."""


class RolloutError(TiergateError):
    """A rollout command that cannot apply (no candidate, unknown agent, bad share)."""


class EvalError(TiergateError):
    """A suite that cannot run as written: names the file, the case and the field."""

    def __init__(
        self, message: str, *, file: str, case: str | None = None, field: str | None = None
    ) -> None:
        where = ", ".join(
            p for p in (f"suite {file}", case and f"case {case}", field and f"field {field}") if p
        )
        super().__init__(f"{where}: {message}")


#: Failure types that say the request itself is wrong, so no retry could go differently.
#: Every activity's retry policy lists them (`tiergate.workflows` retry table), so each is
#: one attempt in the history, not a retry budget spent on the same refusal.
NON_RETRYABLE_ERRORS = [
    "ConfigError",
    "PolicyError",
    "RunInputError",
    "PayloadTooLargeError",
    "ToolRegistrationError",
    "AgentPaused",
    "ProviderRefused",
    "InvalidToolArguments",
    "UngatedToolCall",
    "UnverifiedToolCall",
]
