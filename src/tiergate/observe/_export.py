"""Span and metric exporters: redaction in front of every exporter, failures contained.

Every exporter tiergate installs is wrapped in `SafeSpanExporter`, so (a) no span leaves the
process without passing the redaction layer, and (b) a wrong or dead endpoint never fails
a run: the first failure is logged once, later ones are dropped silently until an export
succeeds again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from tiergate.sensitive import Redactor

_log = structlog.get_logger("tiergate.telemetry")


class JsonlSpanExporter(SpanExporter):
    """Appends one JSON object per span to a file: the embedded default's trace store."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class JsonlMetricExporter(MetricExporter):
    """Appends each periodic metrics collection to a file as one JSON line."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(metrics_data.to_json(indent=None) + "\n")
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class FailureLog:
    """Logs an exporter's first failure and its recovery, and nothing in between."""

    def __init__(self, exporter: str) -> None:
        self.exporter = exporter
        self.failing = False
        self.failures = 0

    def failed(self, error: str, dropped: int) -> None:
        self.failures += 1
        if not self.failing:
            self.failing = True
            _log.warning(
                "telemetry_export_failed",
                exporter=self.exporter,
                error=error,
                dropped=dropped,
                detail="telemetry is dropped until the exporter recovers; runs are not affected",
            )

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            _log.info("telemetry_export_recovered", exporter=self.exporter)


class SafeSpanExporter(SpanExporter):
    """Redacts every span, then exports; an exporter failure is logged once and dropped."""

    def __init__(self, inner: SpanExporter, redactor: Redactor, name: str) -> None:
        self.inner, self.redactor = inner, redactor
        self.log = FailureLog(name)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        redacted = [redact_span(span, self.redactor) for span in spans]
        try:
            result = self.inner.export(redacted)
        except Exception as error:  # an exporter bug or a dead endpoint: never the run's problem
            self.log.failed(repr(error), len(spans))
            return SpanExportResult.FAILURE
        if result is SpanExportResult.FAILURE:
            self.log.failed("the exporter reported FAILURE", len(spans))
        else:
            self.log.succeeded()
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            return False

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception as error:
            _log.warning("telemetry_shutdown_failed", exporter=self.log.exporter, error=repr(error))


class SafeMetricExporter(MetricExporter):
    """A metric exporter whose failures are logged once and dropped, like SafeSpanExporter."""

    def __init__(self, inner: MetricExporter, name: str) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.log = FailureLog(name)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as error:
            self.log.failed(repr(error), len(metrics_data.resource_metrics))
            return MetricExportResult.FAILURE
        if result is MetricExportResult.FAILURE:
            self.log.failed("the exporter reported FAILURE", len(metrics_data.resource_metrics))
        else:
            self.log.succeeded()
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self.inner.shutdown(timeout_millis=timeout_millis)
        except Exception as error:
            _log.warning("telemetry_shutdown_failed", exporter=self.log.exporter, error=repr(error))


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """A copy of ``span`` whose attributes, events and status text have been redacted."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redactor.text(status.description))
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_attributes(span.attributes, redactor),
        events=[
            Event(e.name, _attributes(e.attributes, redactor), e.timestamp) for e in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _attributes(attributes: Any, redactor: Redactor) -> dict[str, Any]:
    if not attributes:
        return {}
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, str):
            out[key] = redactor.value(value, key.rsplit(".", 1)[-1])
        elif isinstance(value, tuple | list):
            out[key] = tuple(redactor.text(v) if isinstance(v, str) else v for v in value)
        else:
            out[key] = value
    return out
