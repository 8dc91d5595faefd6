"""OpenTelemetry tracing across Kafka: one trace per order, a span per hop.

Every send is a PRODUCER span whose context travels in the record's W3C `traceparent` header;
every handled record is a CONSUMER span, child of the span in its header. So the order service
(POST /orders), the saga, inventory, payment and the read models all join the order's trace,
across processes. The exporter is ORDERSTREAM_OTEL_EXPORTER: "none" (default: every helper
returns at once and no header is added), "otlp" (HTTP to ORDERSTREAM_OTEL_ENDPOINT; needs the
`otlp` extra), "file" (JSON lines, for tests and a quick look) or "memory" (in-process tests).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orderstream.errors import OrderstreamError
from orderstream.settings import Settings

PROPAGATED = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()  # W3C trace context, without global state

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class _Tracing:
    tracer: trace.Tracer | None = None
    provider: TracerProvider | None = None
    memory: InMemorySpanExporter | None = None


_on = _Tracing()


def configure(settings: Settings, instance: str = "") -> None:
    """Set tracing up from the settings (again: the previous provider is flushed and closed)."""
    global _on
    if _on.provider is not None:
        _on.provider.shutdown()
    _on = _Tracing()
    if settings.otel_exporter == "none":
        return
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.instance.id": instance}
    )
    provider = TracerProvider(resource=resource)
    if settings.otel_exporter == "memory":
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        _on.memory = memory
    elif settings.otel_exporter == "file":
        exporter = JsonLinesExporter(settings.otel_file)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp(settings.otel_endpoint)))
    _on.provider, _on.tracer = provider, provider.get_tracer("orderstream")


def _otlp(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise OrderstreamError(
            "ORDERSTREAM_OTEL_EXPORTER=otlp needs the OTLP exporter: "
            "pip install 'orderstream[otlp]', or choose none/file"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter


def enabled() -> bool:
    return _on.tracer is not None


def finished_spans() -> tuple[ReadableSpan, ...]:
    """The spans the "memory" exporter holds (tests)."""
    return tuple(_on.memory.get_finished_spans()) if _on.memory is not None else ()


def flush() -> None:
    if _on.provider is not None:
        _on.provider.force_flush()


# --- spans around sends and handled records --------------------------------------------------


# With tracing off (the default) the helpers below hand out these do-nothing context managers:
# a generator-based one costs about 1 µs per `with`, on every record and every send.
_UNTRACED: AbstractContextManager[None] = nullcontext()


def producing(
    event_type: str, topic: str, order_id: str | None
) -> AbstractContextManager[dict[str, bytes]]:
    """A PRODUCER span around one send; yields the headers that carry it (none when off)."""
    tracer = _on.tracer
    if tracer is None:
        return nullcontext({})  # a new dict each time: a caller may add to it
    return _producer_span(tracer, event_type, topic, order_id)


@contextmanager
def _producer_span(
    tracer: trace.Tracer, event_type: str, topic: str, order_id: str | None
) -> Iterator[dict[str, bytes]]:
    attributes = _attributes(topic, event_type, order_id)
    with tracer.start_as_current_span(
        f"publish {event_type}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        yield {k: v.encode() for k, v in carrier.items()}


#: The trace context of each command a batch record carries (`carried_context`), in order,
#: separated by commas ("-": none). A record has one `traceparent`; a batch's commands each
#: belong to their own order's trace.
CONTEXTS_HEADER = "x-traceparents"


def carried_context(headers: dict[str, bytes]) -> str:
    """The traceparent in the headers `producing` yielded ("-": tracing is off)."""
    return headers.get("traceparent", b"-").decode("ascii", "replace")


def each_consumed(
    hop: str, event_type: str, event: Any, order_ids: Sequence[str]
) -> AbstractContextManager[None]:
    """A CONSUMER span "`hop` `event_type`" per command of a batch record (the Faust `event`),
    each child of the span its own context names (`CONTEXTS_HEADER`), open while the block runs;
    `order_ids`: the commands' orders, in the batch's order."""
    tracer = _on.tracer
    if tracer is None:
        return _UNTRACED
    return _consumer_spans(tracer, hop, event_type, event, order_ids)


@contextmanager
def _consumer_spans(
    tracer: trace.Tracer, hop: str, event_type: str, event: Any, order_ids: Sequence[str]
) -> Iterator[None]:
    raw = bytes((event.headers or {}).get(CONTEXTS_HEADER, b"")).decode("ascii", "replace")
    contexts = raw.split(",") if raw else []
    msg = event.message
    opened = []
    for n, order_id in enumerate(order_ids):
        parent = contexts[n] if n < len(contexts) else "-"
        carrier = {"traceparent": parent} if parent != "-" else {}
        attributes = {
            **_attributes(msg.topic, event_type, order_id),
            "messaging.kafka.partition": msg.partition,
            "messaging.kafka.offset": msg.offset,
            "orderstream.hop": hop,
        }
        opened.append(
            tracer.start_span(
                f"{hop} {event_type}",
                context=_PROPAGATOR.extract(carrier),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            )
        )
    try:
        yield
    finally:
        for span in opened:
            span.end()


@contextmanager
def internal(name: str, order_id: str) -> Iterator[None]:
    """An INTERNAL span for work inside a hop that is not a Kafka record (the saga's inline
    charge of the payment gateway), child of the current span."""
    tracer = _on.tracer
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(
        name, kind=SpanKind.INTERNAL, attributes={"orderstream.order_id": order_id}
    ):
        yield


def traced(event: Any, hop: str) -> AbstractContextManager[None]:
    """A CONSUMER span for one Faust event handled by `hop` ("saga", "inventory" ...), child of
    the span its `traceparent` header names; current while the handler runs, so what it
    publishes joins the same trace."""
    tracer = _on.tracer
    if tracer is None:
        return _UNTRACED
    return _consumer_span(tracer, event, hop)


@contextmanager
def _consumer_span(tracer: trace.Tracer, event: Any, hop: str) -> Iterator[None]:
    headers = event.headers or {}
    carrier = {k: bytes(headers[k]).decode("latin-1") for k in PROPAGATED if k in headers}
    event_type, order_id = _peek(event.value)
    msg = event.message
    attributes = {
        **_attributes(msg.topic, event_type, order_id),
        "messaging.kafka.partition": msg.partition,
        "messaging.kafka.offset": msg.offset,
        "orderstream.hop": hop,
    }
    with tracer.start_as_current_span(
        f"{hop} {event_type}",
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ):
        yield


def server_span(name: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an HTTP view method: a SERVER span (a trace's root) around each request."""

    def wrap(view: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(view)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            tracer = _on.tracer
            if tracer is None:
                return await view(*args, **kwargs)
            with tracer.start_as_current_span(name, kind=SpanKind.SERVER):
                return await view(*args, **kwargs)

        return run

    return wrap


def mark_failed(kind: str, message: str) -> None:
    """Record on the current span that its event became a dead letter."""
    if _on.tracer is None:
        return
    span = trace.get_current_span()
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {message[:200]}"))
    span.add_event("dead_letter", {"orderstream.dlq.kind": kind})


def _attributes(topic: str, event_type: str, order_id: str | None) -> dict[str, Any]:
    found = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "orderstream.event_type": event_type,
    }
    return {**found, "orderstream.order_id": order_id} if order_id else found


def _peek(raw: bytes | None) -> tuple[str, str | None]:
    """Event type and order id of a raw record, for naming its span (None if unreadable)."""
    try:
        body = orjson.loads(raw or b"")
        data = body.get("data", body)
        order_id = data.get("orderId") if isinstance(data, dict) else None
        return str(body.get("eventType", "unknown"))[:64], str(order_id)[:64] if order_id else None
    except (orjson.JSONDecodeError, AttributeError):
        return "unreadable", None


# --- the "file" exporter ---------------------------------------------------------------------


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as plain JSON: ids in hex, as W3C traceparent writes them."""
    ctx, parent = span.get_span_context() or trace.INVALID_SPAN_CONTEXT, span.parent
    return {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "parentSpanId": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "service": span.resource.attributes.get("service.name"),
        "instance": span.resource.attributes.get("service.instance.id"),
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


class JsonLinesExporter(SpanExporter):
    """Appends each span as one JSON line to a file (one file per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(orjson.dumps(span_record(s)) + b"\n" for s in spans)
        with self.path.open("ab") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing held open between exports."""
