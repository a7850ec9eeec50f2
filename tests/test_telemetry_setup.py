"""Exporter choice from OTEL_*, failure containment, the JSONL default and config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import Captured
from tiergate.cluster import free_port
from tiergate.config import parse_agent_yaml
from tiergate.errors import ConfigError
from tiergate.observe import JsonlSpanExporter, SafeSpanExporter, exporter_choice
from tiergate.sensitive import RedactionConfig, Redactor


@pytest.mark.parametrize(
    ("env", "signal", "expected"),
    [
        ({}, "traces", ("jsonl", None)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "traces", ("otlp", "http/protobuf")),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "metrics",
            ("otlp", "grpc"),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            },
            "traces",
            ("otlp", "grpc"),
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"}, "metrics", ("jsonl", None)),
        ({"OTEL_TRACES_EXPORTER": "console"}, "traces", ("console", None)),
        ({"OTEL_TRACES_EXPORTER": "none"}, "traces", ("none", None)),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, "traces", ("none", None)),
    ],
)
def test_exporter_choice_follows_otel_variables(
    env: dict[str, str], signal: str, expected: tuple[str, str | None]
) -> None:
    assert exporter_choice(env, signal) == expected


def test_unknown_exporter_or_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='zipkin'"):
        exporter_choice({"OTEL_TRACES_EXPORTER": "zipkin"}, "traces")
    with pytest.raises(ConfigError, match="OTLP protocol 'http/json'"):
        exporter_choice(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "traces",
        )


def make_spans(count: int, **attributes: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}", attributes=attributes):
            pass
    return list(memory.get_finished_spans())


def test_a_dead_endpoint_is_logged_once_and_dropped(captured: Captured) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"
    exporter = SafeSpanExporter(OTLPSpanExporter(endpoint=dead, timeout=1), Redactor(), "dead")
    before = captured.log_text().count("telemetry_export_failed")
    spans = make_spans(1)
    results = [exporter.export(spans) for _ in range(2)]
    assert results == [SpanExportResult.FAILURE] * 2
    assert exporter.log.failures == 2
    lines = [e for e in captured.logs() if e.get("event") == "telemetry_export_failed"]
    assert captured.log_text().count("telemetry_export_failed") == before + 1
    assert lines[-1]["exporter"] == "dead"
    assert lines[-1]["level"] == "warning"
    # Recovery is logged once too, and spans flow again.
    exporter.inner = InMemorySpanExporter()
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert captured.log_text().count("telemetry_export_recovered") >= 1


def test_an_exporter_that_raises_never_raises_to_the_caller() -> None:
    class Broken(InMemorySpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            raise RuntimeError("collector is on fire")

    exporter = SafeSpanExporter(Broken(), Redactor(), "broken")
    assert exporter.export(make_spans(1)) == SpanExportResult.FAILURE


def test_every_exporter_sees_redacted_spans() -> None:
    memory = InMemorySpanExporter()
    exporter = SafeSpanExporter(memory, Redactor(), "memory")
    exporter.export(make_spans(1, note="card 4111 1111 1111 1111", password="hunter2"))
    (span,) = memory.get_finished_spans()
    assert span.attributes == {
        "note": "card [REDACTED:card_number]",
        "password": "[REDACTED:password]",
    }


def test_spans_are_masked_by_the_configured_redactor_with_every_kind() -> None:
    memory = InMemorySpanExporter()
    config = RedactionConfig(patterns={"ticket_pin": r"PIN-\d{4}"}, fields=["dob"])
    exporter = SafeSpanExporter(memory, Redactor(config), "memory")
    exporter.export(
        make_spans(
            1,
            note="PIN-1234, SSN 123-45-6789, 4111.1111.1111.1111, call 555-123-4567",
            userPassword="hunter2",
            dob="1990-01-01",
        )
    )
    (span,) = memory.get_finished_spans()
    assert span.attributes == {
        "note": "[REDACTED:ticket_pin], SSN [REDACTED:ssn], [REDACTED:card_number], call "
        "[REDACTED:phone]",
        "userPassword": "[REDACTED:userpassword]",
        "dob": "[REDACTED:dob]",
    }


def test_jsonl_exporter_appends_one_span_per_line(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporter = JsonlSpanExporter(path)
    exporter.export(make_spans(2))
    exporter.export(make_spans(1))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["span-0", "span-1", "span-0"]
    assert all(line["context"]["trace_id"] for line in lines)


def test_an_unknown_log_field_is_a_config_error() -> None:
    text = "agent:\n  name: x\n  observability:\n    log_fields: [run_id, colour]\n"
    with pytest.raises(ConfigError) as error:
        parse_agent_yaml(text, "x.yaml")
    assert error.value.file == "x.yaml"
    assert "observability.log_fields" in str(error.value)
    assert "unknown log field(s) ['colour']; known fields: run_id" in str(error.value)


class OtlpReceiver:
    """A local OTLP/HTTP collector: decodes what real exporters POST to /v1/traces."""

    def __init__(self) -> None:
        received: list[ExportTraceServiceRequest] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    received.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def close(self) -> None:
        self.server.shutdown()


def test_spans_reach_a_real_otlp_http_collector_redacted() -> None:
    receiver = OtlpReceiver()
    try:
        exporter = SafeSpanExporter(
            OTLPSpanExporter(endpoint=receiver.endpoint, timeout=5), Redactor(), "otlp"
        )
        spans = make_spans(2, note="mail pat@example.com", ok="plain")
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        receiver.close()
    (request,) = receiver.received
    sent = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in sent] == ["span-0", "span-1"]
    values = {a.key: a.value.string_value for a in sent[0].attributes}
    assert values == {"note": "mail [REDACTED:email]", "ok": "plain"}


def test_both_otlp_protocols_build_exporters(tmp_path: Path) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    from tiergate.observe._setup import _metric_exporter, _span_exporter

    grpc_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    kind, protocol = exporter_choice(grpc_env, "traces")
    assert isinstance(_span_exporter(kind, protocol, tmp_path / "s"), GrpcSpanExporter)
    kind, protocol = exporter_choice({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "traces")
    assert isinstance(_span_exporter(kind, protocol, tmp_path / "s"), OTLPSpanExporter)
    assert _metric_exporter("otlp", "grpc", tmp_path / "m") is not None
    assert _span_exporter("none", None, tmp_path / "s") is None


LOGGING = """
import sys
import structlog
from tiergate.observe import install
from tiergate.settings import Settings
install(Settings(telemetry=False), log_stream=sys.stdout)
structlog.get_logger("t").warning(
    "step", note="PIN-1234, SSN 123-45-6789, 4111.1111.1111.1111", userPassword="hunter2"
)
"""


def test_logs_are_masked_by_the_configured_redactor_with_every_kind(tmp_path: Path) -> None:
    # `install` sets the process's logging once: a process of its own for this setting.
    env = {
        **os.environ,
        "TIERGATE_HOME": str(tmp_path),
        "TIERGATE_REDACTION": json.dumps({"patterns": {"ticket_pin": r"PIN-\d{4}"}}),
    }
    done = subprocess.run(
        [sys.executable, "-c", LOGGING], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(text) for text in done.stdout.splitlines() if text.startswith("{")]
    assert line["note"] == "[REDACTED:ticket_pin], SSN [REDACTED:ssn], [REDACTED:card_number]"
    assert line["userPassword"] == "[REDACTED:userpassword]"
