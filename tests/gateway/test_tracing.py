"""Spans of a status request, against real loopback participants, kept in memory.

Each test passes a tracer provider of its own: the global one is never set, so no
span leaks from one test into another.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from aggregator import OutboundRequest, StatusAggregator, TransportFailure, TransportResponse
from aggregator.gateway._app import GATEWAY
from aggregator.gateway._logs import JsonFormatter, RequestIdFilter
from aggregator.testing import ManualClock
from tests.gateway.harness import gateway_settings, running_gateway
from tests.helpers import FakeNetwork, all_states, ok
from tests.helpers import settings as make_settings
from tests.loopback import LoopbackParticipants, healthy

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACESTATE = "vendor=abc,other=1"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def by_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is kind]


def names(value: object) -> list[str]:
    """A list attribute's names, sorted."""
    assert isinstance(value, tuple | list)
    return sorted(str(name) for name in value)


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


async def test_a_status_is_one_server_span_with_a_client_span_per_participant(
    participants: LoopbackParticipants,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    healthy(participants)
    async with running_gateway(gateway_settings(participants), tracer_provider=provider) as gw:
        response = await gw.client.get("/workflows/order-1/status")
    assert response.status == 200
    (server,) = by_kind(exporter, SpanKind.SERVER)
    clients = by_kind(exporter, SpanKind.CLIENT)
    assert server.name == "GET /workflows/{workflow_id}/status"
    assert server.parent is None
    attributes = dict(server.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/workflows/{workflow_id}/status"
    assert attributes["url.path"] == "/workflows/order-1/status"
    assert attributes["http.response.status_code"] == 200
    assert attributes["workflow.id"] == "order-1"
    assert attributes["workflow.status"] == "in_transit"
    assert attributes["workflow.complete"] is True
    assert attributes["aggregator.cache_hits"] == ()
    assert sorted(str(s.attributes and s.attributes["participant.name"]) for s in clients) == [
        "inventory",
        "payment",
        "shipping",
    ]
    assert server.context is not None
    for client in clients:
        assert client.parent is not None
        assert client.parent.span_id == server.context.span_id
        assert client.context is not None and client.context.trace_id == server.context.trace_id
        client_attributes = dict(client.attributes or {})
        assert client_attributes["participant.outcome"] == "ok"
        assert client_attributes["participant.source"] == "live"
        assert client_attributes["http.response.status_code"] == 200
        assert client_attributes["server.address"] == "127.0.0.1"
        assert client.status.status_code is StatusCode.UNSET


async def test_the_server_span_continues_the_callers_trace_and_participants_get_their_calls_span(
    participants: LoopbackParticipants,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    healthy(participants)
    async with running_gateway(gateway_settings(participants), tracer_provider=provider) as gw:
        headers = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
        await gw.client.get("/workflows/order-1/status", headers=headers)
    (server,) = by_kind(exporter, SpanKind.SERVER)
    assert hex_ids(server)[0] == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN
    clients = {hex_ids(span)[1]: span for span in by_kind(exporter, SpanKind.CLIENT)}
    assert len(participants.received) == 3
    for request in participants.received:
        version, trace_id, parent_id, flags = request.headers["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        # The participant's parent is the span of the very call that reached it.
        call = clients[parent_id]
        assert call.attributes is not None
        assert request.path.startswith(
            {"payment": "/payments/", "inventory": "/reservations/", "shipping": "/shipments/"}[
                str(call.attributes["participant.name"])
            ]
        )
        assert request.headers["tracestate"] == TRACESTATE


async def test_a_cache_hit_makes_no_client_span_and_is_said_on_the_request_span(
    participants: LoopbackParticipants,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    healthy(participants)
    clock = ManualClock()
    settings = gateway_settings(participants)
    async with running_gateway(settings, clock=clock, tracer_provider=provider) as gw:
        await gw.client.get("/workflows/order-1/status")
        exporter.clear()
        # Each part from the cache; then the whole answer again, as rendered (_reuse).
        for _ in range(2):
            response = await gw.client.get("/workflows/order-1/status")
            assert response.status == 200
    assert len(participants.received) == 3  # the first request's calls alone
    assert by_kind(exporter, SpanKind.CLIENT) == []
    parts, reused = (dict(span.attributes or {}) for span in by_kind(exporter, SpanKind.SERVER))
    for attributes in (parts, reused):
        assert names(attributes["aggregator.cache_hits"]) == ["inventory", "payment", "shipping"]
        assert attributes["workflow.status"] == "in_transit"
    assert "aggregator.reused" not in parts
    assert reused["aggregator.reused"] is True


async def test_failed_calls_are_client_spans_with_an_error_and_its_kind(
    participants: LoopbackParticipants,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    closed_port: int,
) -> None:
    healthy(participants)

    async def busy(_: web.Request) -> web.StreamResponse:
        return web.json_response({"title": "busy"}, status=503)

    participants.behaviours["inventory"] = busy
    urls = participants.urls()
    urls["shipping"] = f"http://127.0.0.1:{closed_port}/shipments/{{workflow_id}}"
    async with running_gateway(make_settings(urls), tracer_provider=provider) as gw:
        response = await gw.client.get("/workflows/order-1/status")
    assert response.status == 200  # payment's part is shown
    calls = {
        str(span.attributes["participant.name"]): span
        for span in by_kind(exporter, SpanKind.CLIENT)
        if span.attributes is not None
    }
    assert set(calls) == {"payment", "inventory", "shipping"}
    busy_call = dict(calls["inventory"].attributes or {})
    assert calls["inventory"].status.status_code is StatusCode.ERROR
    assert busy_call["error.type"] == "http_status"
    assert busy_call["http.response.status_code"] == 503
    assert busy_call["participant.outcome"] == "unavailable"
    refused = dict(calls["shipping"].attributes or {})
    assert calls["shipping"].status.status_code is StatusCode.ERROR
    assert refused["error.type"] == "connection"
    assert refused["participant.outcome"] == "unavailable"
    assert "http.response.status_code" not in refused
    assert calls["payment"].status.status_code is StatusCode.UNSET
    (server,) = by_kind(exporter, SpanKind.SERVER)
    assert dict(server.attributes or {})["workflow.complete"] is False


async def test_without_a_provider_nothing_is_traced_and_the_trace_context_goes_on_unchanged(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    settings = gateway_settings(participants)
    async with running_gateway(settings, tracer_provider=NoOpTracerProvider()) as gw:
        assert not gw.app[GATEWAY].aggregator.tracing.live
        headers = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
        response = await gw.client.get("/workflows/order-1/status", headers=headers)
        assert response.status == 200
        await gw.client.get("/workflows/order-2/status")
    assert len(participants.received) == 6
    for request in participants.received:
        if "order-1" in request.path:
            assert request.headers["traceparent"] == TRACEPARENT
            assert request.headers["tracestate"] == TRACESTATE
        else:
            assert "traceparent" not in request.headers
            assert "tracestate" not in request.headers


async def test_embedded_calls_are_children_of_the_callers_span_and_joiners_get_an_event(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved", shipping="in_transit")
    release = asyncio.Event()

    async def slow(_: OutboundRequest) -> TransportResponse | TransportFailure:
        await release.wait()
        return ok("payment", "o-1", "captured")

    network.set("payment", slow)
    tracer = provider.get_tracer("caller")
    clock = ManualClock()
    aggregator = StatusAggregator(
        make_settings(), transport=network, clock=clock, sleep=clock.sleep, tracer_provider=provider
    )
    async with aggregator as agg:
        with tracer.start_as_current_span("first") as first:
            starter = asyncio.create_task(agg.answer("o-1"))
        await network.received(3)
        with tracer.start_as_current_span("second") as second:
            joiner = asyncio.create_task(agg.answer("o-1"))
            await asyncio.sleep(0)  # the joiner reaches the call in flight
        release.set()
        await asyncio.gather(starter, joiner)
    clients = by_kind(exporter, SpanKind.CLIENT)
    assert len(clients) == 3  # the joiner made no call, and no span
    for client in clients:
        assert client.parent is not None
        assert client.parent.span_id == first.get_span_context().span_id
    (joined,) = [s for s in exporter.get_finished_spans() if s.name == "second"]
    assert {event.name for event in joined.events} == {"coalesced"}
    assert "payment" in {
        str((event.attributes or {})["participant.name"]) for event in joined.events
    }
    assert second.get_span_context().trace_id != first.get_span_context().trace_id


def test_json_lines_carry_the_trace_and_span_id_while_a_recorded_span_is_current(
    provider: TracerProvider,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with provider.get_tracer("t").start_as_current_span("work") as span:
            logger.warning("inside")
        logger.warning("outside")
        with trace.use_span(trace.NonRecordingSpan(span.get_span_context())):
            logger.warning("not recorded")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    inside, outside, unrecorded = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert len(inside["trace_id"]) == 32 and len(inside["span_id"]) == 16
    assert "trace_id" not in outside and "span_id" not in outside
    assert "trace_id" not in unrecorded
