"""The participants' spans: one order's events, handlers and steps in one trace.

Only the OpenTelemetry API is used; with no SDK configured every span is the
API's no-op one. Trace context travels in the W3C ``traceparent`` header: in
query requests, in event messages' headers, and in the outbox and step rows, so
that a step taken after a restart still continues the trace of the change that
scheduled it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._events import Event, subject

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
from ._store import Step

tracer = trace.get_tracer("participants")
# W3C Trace Context alone, as the aggregator: ``traceparent`` and ``tracestate``,
# whatever OTEL_PROPAGATORS says, and never a caller's baggage.
_W3C = TraceContextTextMapPropagator()


def trace_headers() -> dict[str, str]:
    """The current trace context as headers (empty when no span is recording)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def _parent(headers: Mapping[str, str]) -> context.Context:
    return _W3C.extract(headers)


def _attributes(participant: str, event: Event) -> dict[str, str]:
    return {
        "participant.name": participant,
        "workflow.id": event.workflow_id,
        "messaging.system": "nats",
        "messaging.destination.name": subject(event.type),
        "messaging.message.id": event.event_id,
    }


@contextmanager
def handling(participant: str, event: Event) -> Iterator[Span]:
    """A consumer span for a handler, child of the span that published the event."""
    with tracer.start_as_current_span(
        f"process {event.type}",
        context=_parent(event.trace),
        kind=SpanKind.CONSUMER,
        attributes=_attributes(participant, event),
    ) as span:
        yield span


@contextmanager
def stepping(participant: str, step: Step) -> Iterator[Span]:
    """A span for a scheduled step, child of the change that scheduled it."""
    with tracer.start_as_current_span(
        f"{participant} {step.name}",
        context=_parent(step.headers),
        attributes={"participant.name": participant, "workflow.id": step.workflow_id},
    ) as span:
        yield span


@contextmanager
def publishing(source: str, event: Event, *, by: Tracer = tracer) -> Iterator[dict[str, str]]:
    """A producer span for sending ``event``, child of the change that caused it
    (``event.trace``); yields the headers that carry it to the consumers."""
    with by.start_as_current_span(
        f"publish {event.type}",
        context=_parent(event.trace),
        kind=SpanKind.PRODUCER,
        attributes=_attributes(source, event),
    ):
        yield trace_headers()


@contextmanager
def placing(event: Event, *, by: Tracer = tracer) -> Iterator[Event]:
    """The shop front's ``place order`` span, the root of the order's trace, with the
    producer span that sends it; yields the event carrying that context."""
    with by.start_as_current_span("place order", attributes={"workflow.id": event.workflow_id}):
        placed = event.model_copy(update={"trace": trace_headers()})
        with publishing("shop-front", placed, by=by) as headers:
            yield placed.model_copy(update={"trace": headers})


@contextmanager
def serving(participant: str, workflow_id: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A server span for a query, child of the caller's (the aggregator's client span)."""
    with tracer.start_as_current_span(
        f"GET {participant} query",
        context=_parent(headers),
        kind=SpanKind.SERVER,
        attributes={"participant.name": participant, "workflow.id": workflow_id},
    ) as span:
        yield span


def export_spans(path: Path, service: str, workflow_id: str | None = None) -> None:
    """Make this process record its spans and write each, as it ends, to ``path`` as
    a JSON line (a process killed with SIGKILL loses none it has ended); with
    ``workflow_id``, only that workflow's (``only_workflow``).

    Needs the OpenTelemetry SDK (the ``otel`` extra); ValueError says so."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
    except ImportError:
        raise ValueError(
            "--trace-file needs the OpenTelemetry SDK:"
            " pip install 'choreography-status-aggregator[otel]'"
        ) from None
    out = path.open("a", buffering=1, encoding="utf-8")  # line-buffered: one span, one write
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider.add_span_processor(only_workflow(exporter, workflow_id))
    trace.set_tracer_provider(provider)


def only_workflow(exporter: SpanExporter, workflow_id: str | None) -> SpanProcessor:
    """Export each span as it ends; with ``workflow_id``, only the spans of traces
    that touch it: those with its ``workflow.id`` and the rest of their traces that
    end after them (a request's span ends after its calls'), so that a long run
    keeps what one order needs, not every span."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace import SpanProcessor as Base
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    inner = SimpleSpanProcessor(exporter)
    if workflow_id is None:
        return inner

    class OnlyWorkflow(Base):
        def __init__(self) -> None:
            self.traces: set[int] = set()

        def on_end(self, span: ReadableSpan) -> None:
            trace_id = span.context.trace_id if span.context is not None else 0
            if (span.attributes or {}).get("workflow.id") == workflow_id:
                self.traces.add(trace_id)
            if trace_id in self.traces:
                inner.on_end(span)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return inner.force_flush(timeout_millis)

    return OnlyWorkflow()


class TraceIds(logging.Filter):
    """Adds ``trace`` to each log record: `` trace_id=<32 hex> span_id=<16 hex>`` while
    a span is current, else nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        record.trace = (
            f" trace_id={span.trace_id:032x} span_id={span.span_id:016x}" if span.is_valid else ""
        )
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """A participant process's log: lines on stderr, with the trace and span ids of the
    span current when the line was written, if any."""
    handler = logging.StreamHandler()
    handler.addFilter(TraceIds())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s%(trace)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])
