"""Observability: OpenTelemetry traces and metrics and structlog logs, exported through the redaction layer."""

from tiergate.observe._export import (
    FailureLog,
    JsonlMetricExporter,
    JsonlSpanExporter,
    SafeMetricExporter,
    SafeSpanExporter,
    redact_span,
)
from tiergate.observe._logs import (
    LogFormat,
    RedactProcessor,
    add_trace_ids,
    configure_logging,
)
from tiergate.observe._setup import (
    Telemetry,
    current,
    exporter_choice,
    install,
    plugins,
    shutdown,
)

__all__ = [
    "FailureLog",
    "JsonlMetricExporter",
    "JsonlSpanExporter",
    "LogFormat",
    "RedactProcessor",
    "SafeMetricExporter",
    "SafeSpanExporter",
    "Telemetry",
    "add_trace_ids",
    "configure_logging",
    "current",
    "exporter_choice",
    "install",
    "plugins",
    "redact_span",
    "shutdown",
]
