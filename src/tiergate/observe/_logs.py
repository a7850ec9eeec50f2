"""structlog configuration: JSON lines for pipelines, a readable console on a TTY.

The processor chain is the same for structlog events and for the standard-library records
that temporalio and other libraries emit, so both carry trace/span ids for correlation and
both pass the redaction layer before they are written.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from tiergate.sensitive import Redactor

LogFormat = Literal["auto", "json", "console"]
#: Keys the chain adds itself; they are never redacted (ids and levels hold no user data).
_STRUCTURAL = frozenset({"timestamp", "level", "logger", "trace_id", "span_id"})


def add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Adds the current OpenTelemetry trace and span ids, so a log line finds its span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


class RedactProcessor:
    """The redaction layer as a structlog processor: runs last before rendering."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        return {
            key: value if key in _STRUCTURAL else self.redactor.value(value, key)
            for key, value in event.items()
        }


def _chain(redactor: Redactor) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        structlog.processors.format_exc_info,
        RedactProcessor(redactor),
    ]


def configure_logging(
    redactor: Redactor,
    *,
    stream: TextIO | None = None,
    log_format: LogFormat = "auto",
    level: str = "info",
) -> None:
    """Routes structlog and stdlib logging to ``stream`` (stderr) through one chain."""
    out = stream or sys.stderr
    console = log_format == "console" or (log_format == "auto" and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=True)
        if console
        else structlog.processors.JSONRenderer(sort_keys=True)
    )
    chain = _chain(redactor)
    structlog.configure(
        processors=[*chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=chain,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.set_name("tiergate")
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == "tiergate"]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Exporters log every retry at WARNING; SafeSpanExporter reports a failure once instead.
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    logging.getLogger("opentelemetry.sdk").setLevel(logging.ERROR)
