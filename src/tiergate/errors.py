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


class ModelProviderError(TiergateError):
    """A model provider answered with something other than a usable response."""


class ToolBackendError(TiergateError):
    """A tool backend refused or failed a call; the step records it and no effect is assumed."""


class PayloadTooLargeError(TiergateError):
    """Data entering the run exceeds a size limit Temporal or tiergate enforces."""
