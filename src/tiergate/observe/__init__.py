"""Observability: sensitive-data detection, the one redaction layer, OpenTelemetry traces and metrics, structlog logs."""

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
from tiergate.observe._pii import (
    EMAIL,
    PHONE,
    SECRET,
    card_numbers,
    luhn_valid,
    pii_kinds,
)
from tiergate.observe._redaction import (
    DEFAULT_REDACTOR,
    DEFAULT_SECRET_FIELDS,
    PiiKind,
    RedactionConfig,
    Redactor,
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
    "DEFAULT_REDACTOR",
    "DEFAULT_SECRET_FIELDS",
    "EMAIL",
    "PHONE",
    "SECRET",
    "FailureLog",
    "JsonlMetricExporter",
    "JsonlSpanExporter",
    "LogFormat",
    "PiiKind",
    "RedactProcessor",
    "RedactionConfig",
    "Redactor",
    "SafeMetricExporter",
    "SafeSpanExporter",
    "Telemetry",
    "add_trace_ids",
    "card_numbers",
    "configure_logging",
    "current",
    "exporter_choice",
    "install",
    "luhn_valid",
    "pii_kinds",
    "plugins",
    "redact_span",
    "shutdown",
]
