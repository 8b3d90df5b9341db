"""One order's history is one trace across three processes: each handler's span is
a child of the span that published its event, each step's of the change that
scheduled it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from aggregator.gateway import create_app
from demo._trace import SpanRecord, read_lines, tree
from participants import Chance, ChoreographyConfig, ProcessChoreography, listen
from tests.helpers import settings

FREE = {"payment": 0, "inventory": 0, "shipping": 0}
# The delivered path, in causal order: (span, process).
DELIVERED = [
    ("place order", "demo"),
    ("publish OrderPlaced", "demo"),
    ("process OrderPlaced", "payment"),
    ("payment authorize", "payment"),
    ("payment settle", "payment"),
    ("publish PaymentCaptured", "payment"),
    ("process PaymentCaptured", "inventory"),
    ("inventory reserve", "inventory"),
    ("publish StockReserved", "inventory"),
    ("process StockReserved", "shipping"),
    ("shipping schedule", "shipping"),
    ("shipping dispatch", "shipping"),
    ("shipping deliver", "shipping"),
    ("publish ShipmentDelivered", "shipping"),
]


async def delivered(client: aiohttp.ClientSession, url: str) -> None:
    while True:  # polling the final state, which lasts
        async with client.get(url) as response:
            if response.status == 200 and (await response.json())["state"] == "delivered":
                return
        await asyncio.sleep(0.05)


def test_the_participants_spans_are_one_linked_chain_across_processes(tmp_path: Path) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    chance = Chance(seed=4, min_delay=0.001, max_delay=0.01)
    assert chance.expected_outcome("order-0001") == "delivered"
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "demo"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    config = ChoreographyConfig(
        ports=dict(FREE), chance=chance, db_dir=tmp_path, bus="nats", trace_dir=tmp_path
    )

    async def run() -> None:
        async with ProcessChoreography(config, tracer_provider=provider) as choreography:
            workflow_id = await choreography.place_order()
            async with aiohttp.ClientSession() as client:
                shipping = choreography.urls["shipping"].format(workflow_id=workflow_id)
                await asyncio.wait_for(delivered(client, shipping), 60)
                # A status request through the gateway, traced by the same provider.
                app = create_app(settings(choreography.urls), tracer_provider=provider)
                runner = await listen(app, "127.0.0.1", 0, "the gateway")
                try:
                    port = runner.addresses[0][1]
                    url = f"http://127.0.0.1:{port}/workflows/{workflow_id}/status"
                    async with client.get(url) as response:
                        assert response.status == 200
                finally:
                    await runner.cleanup()

    asyncio.run(run())
    spans = [
        SpanRecord.from_json(json.loads(s.to_json())) for s in memory.get_finished_spans()
    ] + read_lines(sorted(tmp_path.glob("*.jsonl")))
    about = [s for s in spans if s.attributes.get("workflow.id") == "order-0001"]
    root = next(s for s in about if s.name == "place order")
    # One trace: every span of the order's history, but the queries (their own traces).
    history = [s for s in about if not s.name.startswith("GET ")]
    assert {s.trace_id for s in history} == {root.trace_id}
    by_id = {s.span_id: s for s in history}
    # Walk up from the last span: every parent is there, back to the root.
    last = next(s for s in history if s.name == "publish ShipmentDelivered")
    path = [last]
    while path[-1].parent_id is not None:
        path.append(by_id[path[-1].parent_id])
    assert [(s.name, s.service) for s in reversed(path)] == DELIVERED
    # Each participant's log names the trace and span of each change it made.
    settle = next(s for s in history if s.name == "payment settle")
    ids = (
        f"trace_id={settle.trace_id.removeprefix('0x')} span_id={settle.span_id.removeprefix('0x')}"
    )
    log = (tmp_path / "payment.log").read_text()
    assert f"participants.service {ids}: payment order-0001: captured (version 3)" in log
    assert tree("order-0001", spans)[1].startswith("  place order [demo]")
    # The request's server span, a client span per participant beneath it, and each
    # participant's query span (in its own process) beneath the call that asked it.
    (server,) = [s for s in spans if s.name == "GET /workflows/{workflow_id}/status"]
    calls = {s.attributes["participant.name"]: s for s in spans if s.parent_id == server.span_id}
    assert set(calls) == set(FREE)
    for name, call in calls.items():
        (query,) = [s for s in spans if s.parent_id == call.span_id]
        assert (query.name, query.service, query.trace_id) == (
            f"GET {name} query",
            name,
            server.trace_id,
        )
