"""Tracing helpers: the trace context goes out in a W3C traceparent header and comes back as the
parent of the consumer's span; off by default; the file and OTLP exporters write what they get."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from orderstream.observability import tracing
from orderstream.settings import Settings


@pytest.fixture
def memory() -> Iterator[None]:
    tracing.configure(Settings(otel_exporter="memory"), instance="test")
    yield
    tracing.configure(Settings(otel_exporter="none"))


def record(headers: dict[str, bytes], value: bytes = b"", offset: int = 7) -> Any:
    """What a Faust agent gets: headers (str -> bytes), the raw value and the message."""
    message = SimpleNamespace(topic="order-events", partition=2, offset=offset)
    return SimpleNamespace(headers=headers, value=value, message=message)


ORDER = orjson.dumps({"eventType": "OrderPlaced", "data": {"orderId": "o-1"}})


def test_off_by_default_adds_no_header_and_no_span() -> None:
    tracing.configure(Settings(otel_exporter="none"))

    with tracing.producing("OrderPlaced", "order-events", "o-1") as headers:
        pass
    with tracing.traced(record({}), "saga"):
        pass

    assert headers == {} and not tracing.enabled() and tracing.finished_spans() == ()


def test_consumer_span_is_the_child_of_the_producer_span_in_the_header(memory: None) -> None:
    # Given a producer span, whose context travels in the record's headers
    with tracing.producing("OrderPlaced", "order-events", "o-1") as headers:
        pass
    assert set(headers) == {"traceparent"}
    # When a consumer handles the record (elsewhere: only the headers connect them)
    with (
        tracing.traced(record(headers, ORDER), "saga"),
        tracing.producing("ReserveStock", "inventory-requests", "o-1"),
    ):
        pass

    # Then: one trace, each span the child of the one before
    produced, reserve, consumed = tracing.finished_spans()
    assert {s.context.trace_id for s in (produced, reserve, consumed)} == {
        produced.context.trace_id
    }
    assert produced.parent is None
    assert consumed.parent is not None and consumed.parent.span_id == produced.context.span_id
    assert reserve.parent is not None and reserve.parent.span_id == consumed.context.span_id
    assert consumed.name == "saga OrderPlaced" and consumed.kind.name == "CONSUMER"
    assert consumed.attributes is not None
    assert consumed.attributes["orderstream.order_id"] == "o-1"
    assert consumed.attributes["messaging.kafka.offset"] == 7
    assert headers["traceparent"].decode().split("-")[1] == f"{produced.context.trace_id:032x}"


def test_record_without_header_starts_a_trace_and_unreadable_values_are_named(
    memory: None,
) -> None:
    with tracing.traced(record({}, b"{not json"), "inventory"):
        pass

    (span,) = tracing.finished_spans()
    assert span.parent is None and span.name == "inventory unreadable"


def test_dead_letter_marks_the_span_failed(memory: None) -> None:
    with tracing.traced(record({}, ORDER), "saga"):
        tracing.mark_failed("out_of_order", "PaymentSucceeded before its order")

    (span,) = tracing.finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert [e.name for e in span.events] == ["dead_letter"]


def test_server_span_is_the_root_of_what_the_view_publishes(memory: None) -> None:
    @tracing.server_span("order-service POST /orders")
    async def post() -> dict[str, bytes]:
        with tracing.producing("OrderPlaced", "order-events", "o-1") as headers:
            return headers

    asyncio.run(post())

    produced, server = tracing.finished_spans()
    assert server.name == "order-service POST /orders" and server.parent is None
    assert produced.parent is not None and produced.parent.span_id == server.context.span_id


def test_file_exporter_writes_one_json_span_per_line(tmp_path: Path) -> None:
    path = tmp_path / "spans" / "w1.jsonl"
    tracing.configure(Settings(otel_exporter="file", otel_file=path), instance="w1")
    try:
        with tracing.producing("OrderPlaced", "order-events", "o-1") as headers:
            pass
        with tracing.traced(record(headers, ORDER), "saga"):
            pass
        tracing.flush()
    finally:
        tracing.configure(Settings(otel_exporter="none"))

    spans = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [s["name"] for s in spans] == ["publish OrderPlaced", "saga OrderPlaced"]
    assert spans[1]["parentSpanId"] == spans[0]["spanId"]
    assert spans[0]["traceId"] == spans[1]["traceId"] and len(spans[0]["traceId"]) == 32
    assert spans[0]["instance"] == "w1" and spans[0]["service"] == "orderstream"


def test_otlp_exporter_posts_spans_to_the_endpoint() -> None:
    received: list[tuple[str, str]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
    tracing.configure(Settings(otel_exporter="otlp", otel_endpoint=endpoint))
    try:
        with tracing.producing("OrderPlaced", "order-events", "o-1"):
            pass
        tracing.flush()
    finally:
        tracing.configure(Settings(otel_exporter="none"))
        server.shutdown()
        server.server_close()

    assert received == [("/v1/traces", "application/x-protobuf")]
