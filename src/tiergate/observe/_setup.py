"""Installing telemetry for a process: tracer, meter, logs, and Temporal's plugin.

OpenTelemetry allows one global tracer provider and one meter provider per process, and
Temporal's `OpenTelemetryPlugin` requires the tracer provider to be replay-safe (spans made
while a workflow replays are neither ended nor exported twice; ids come from the workflow's
deterministic random). So telemetry is installed once, early, by the command that runs a
worker or a client, and everything else asks `current()`.

Exporters follow the standard ``OTEL_*`` variables: ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` (otlp, console, none; tiergate adds ``jsonl``),
``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT`` / ``_PROTOCOL`` (grpc, http/protobuf),
headers and timeouts as the OTLP exporters read them. With none of them set, spans and
metrics go to JSON-lines files under the tiergate home, so the embedded default records them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from temporalio.contrib.opentelemetry import (
    OpenTelemetryPlugin,
    ReplaySafeMeterProvider,
    ReplaySafeTracerProvider,
    create_tracer_provider,
)

from tiergate.core import VERSION
from tiergate.errors import ConfigError
from tiergate.observe._export import (
    JsonlMetricExporter,
    JsonlSpanExporter,
    SafeMetricExporter,
    SafeSpanExporter,
)
from tiergate.observe._logs import configure_logging
from tiergate.sensitive import Redactor

if TYPE_CHECKING:
    # Only annotated: settings.py itself imports observe's redaction config.
    from tiergate.settings import Settings

_EXPORTERS = ("otlp", "console", "jsonl", "none")
_PROTOCOLS = ("grpc", "http/protobuf")


@dataclass
class Telemetry:
    """The installed providers and the exporters behind them."""

    tracer_provider: ReplaySafeTracerProvider
    meter_provider: MeterProvider
    redactor: Redactor
    span_exporters: list[SafeSpanExporter] = field(default_factory=list)
    described: list[str] = field(default_factory=list)

    def plugins(self) -> list[OpenTelemetryPlugin]:
        """Temporal's plugin, for a client or a worker: Temporal spans and propagation."""
        return [OpenTelemetryPlugin(add_temporal_spans=True)]

    def flush(self) -> None:
        self.tracer_provider.force_flush(5_000)
        self.meter_provider.force_flush(5_000)

    def shutdown(self) -> None:
        self.flush()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_current: Telemetry | None = None


def current() -> Telemetry | None:
    return _current


def exporter_choice(env: Mapping[str, str], signal: str) -> tuple[str, str | None]:
    """(exporter, OTLP protocol) for ``signal`` ("traces" or "metrics") from ``OTEL_*``.

    Raises ConfigError on a name tiergate cannot honor, so a typo stops the worker at start
    instead of silently dropping telemetry.
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none", None
    upper = signal.upper()
    named = env.get(f"OTEL_{upper}_EXPORTER", "").strip().lower()
    endpoint = env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    exporter = named.split(",")[0].strip() if named else ("otlp" if endpoint else "jsonl")
    if exporter not in _EXPORTERS:
        raise ConfigError(
            f"OTEL_{upper}_EXPORTER={named!r} is not an exporter tiergate knows",
            fix=f"use one of {', '.join(_EXPORTERS)}",
        )
    if exporter != "otlp":
        return exporter, None
    protocol = (
        env.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _PROTOCOLS:
        raise ConfigError(
            f"OTLP protocol {protocol!r} is not supported",
            fix=f"set OTEL_EXPORTER_OTLP_PROTOCOL to one of {', '.join(_PROTOCOLS)}",
        )
    return exporter, protocol


def _span_exporter(kind: str, protocol: str | None, spans_file: Path) -> SpanExporter | None:
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "jsonl":
        return JsonlSpanExporter(spans_file)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _metric_exporter(kind: str, protocol: str | None, metrics_file: Path) -> MetricExporter | None:
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleMetricExporter()
    if kind == "jsonl":
        return JsonlMetricExporter(metrics_file)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def install(
    settings: Settings,
    *,
    service: str = "tiergate",
    span_exporters: Sequence[SpanExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    log_stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> Telemetry | None:
    """Installs tracing, metrics and logging for this process (once; later calls return it).

    ``span_exporters`` / ``metric_readers`` replace the ``OTEL_*`` choice (tests pass
    in-memory ones); every span exporter is still wrapped in the redaction layer.
    """
    global _current
    if _current is not None:
        return _current
    redactor = Redactor(settings.redaction)
    stream = log_stream
    if stream is None and settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        stream = settings.log_file.open("a", encoding="utf-8", buffering=1)
    configure_logging(
        redactor, stream=stream, log_format=settings.log_format, level=settings.log_level
    )
    if not settings.telemetry:
        return None
    env = os.environ if env is None else env
    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME", service), "service.version": VERSION}
    )
    described: list[str] = []
    tracer_provider = create_tracer_provider(resource=resource)
    safe = _add_span_exporters(tracer_provider, settings, redactor, env, span_exporters, described)
    readers = _metric_readers(settings, env, metric_readers, described)
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(ReplaySafeMeterProvider(meter_provider))
    _current = Telemetry(tracer_provider, meter_provider, redactor, safe, described)
    return _current


def _add_span_exporters(
    provider: ReplaySafeTracerProvider,
    settings: Settings,
    redactor: Redactor,
    env: Mapping[str, str],
    given: Sequence[SpanExporter] | None,
    described: list[str],
) -> list[SafeSpanExporter]:
    """The ``OTEL_*`` choice of span exporter (or the ``given`` ones), each behind the
    redaction layer, added to ``provider``."""
    safe: list[SafeSpanExporter] = []
    if given is not None:
        for index, exporter in enumerate(given):
            wrapped = SafeSpanExporter(exporter, redactor, f"traces/{index}")
            safe.append(wrapped)
            provider.add_span_processor(SimpleSpanProcessor(wrapped))
        return safe
    kind, protocol = exporter_choice(env, "traces")
    spans_file = settings.spans_file or settings.home / "spans.jsonl"
    chosen = _span_exporter(kind, protocol, spans_file)
    described.append(f"traces: {kind}" + (f" {protocol}" if protocol else ""))
    if kind == "jsonl":
        described[-1] += f" -> {spans_file}"
    if chosen is not None:
        wrapped = SafeSpanExporter(chosen, redactor, f"traces/{kind}")
        safe.append(wrapped)
        provider.add_span_processor(BatchSpanProcessor(wrapped))
    return safe


def _metric_readers(
    settings: Settings,
    env: Mapping[str, str],
    given: Sequence[MetricReader] | None,
    described: list[str],
) -> list[MetricReader]:
    """The ``given`` metric readers, or the ``OTEL_*`` choice of exporter in a periodic one."""
    if given is not None:
        return list(given)
    kind, protocol = exporter_choice(env, "metrics")
    metrics_file = settings.metrics_file or settings.home / "metrics.jsonl"
    exporter = _metric_exporter(kind, protocol, metrics_file)
    described.append(f"metrics: {kind}" + (f" {protocol}" if protocol else ""))
    if kind == "jsonl":
        described[-1] += f" -> {metrics_file}"
    if exporter is None:
        return []
    return [PeriodicExportingMetricReader(SafeMetricExporter(exporter, f"metrics/{kind}"))]


def shutdown() -> None:
    """Flushes and stops exporters; call before the process exits."""
    if _current is not None:
        _current.shutdown()


def plugins() -> list[OpenTelemetryPlugin]:
    return _current.plugins() if _current is not None else []
