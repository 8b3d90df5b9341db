"""GET /workflows/{id}/events: a workflow's status as server-sent events, over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aggregator import Settings
from aggregator.gateway import GATEWAY, create_app
from aggregator.gateway import _events as events
from aggregator.gateway._events import Streams
from aggregator.testing import ManualClock
from contracts import Problem, WorkflowStatus
from tests.gateway.harness import Running, gateway_settings, running_gateway
from tests.loopback import LoopbackParticipants, answer, healthy

TTL = 2.0
KEY = "k-0123456789abcdef"


@dataclass
class Event:
    kind: str
    id: str | None
    data: str

    def status(self) -> WorkflowStatus:
        return WorkflowStatus.model_validate_json(self.data)


class Stream:
    """Reads a text/event-stream response: events, comments and ``retry`` apart."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []
        self.retry: list[int] = []

    async def next(self) -> Event | None:
        """The next event; None once the stream has ended."""
        return await asyncio.wait_for(self._next(), timeout=30)

    async def _next(self) -> Event | None:
        fields: dict[str, str] = {}
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in fields:
                    return Event(fields.get("event", "message"), fields.get("id"), fields["data"])
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments.append(value)
            elif name == "retry":
                self.retry.append(int(value))
            else:
                fields[name] = value


async def problem_of(response: aiohttp.ClientResponse) -> Problem:
    assert response.content_type == "application/problem+json"
    return Problem.model_validate(await response.json(content_type=None))


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (a state that lasts once reached)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 (the gateway has no event to wait on)
            await asyncio.sleep(0.01)


def watch_settings(participants: LoopbackParticipants, **overrides: Any) -> Settings:
    no_retry = {"protection": {"retry": False}}
    return gateway_settings(
        participants,
        participants={name: {"url": participants.url(name), **no_retry} for name in PATHS},
        cache={"ttl_ms": int(TTL * 1000)},
        **overrides,
    )


PATHS = ("payment", "inventory", "shipping")


@asynccontextmanager
async def watching(
    settings: Settings, clock: ManualClock, workflow_id: str = "order-42"
) -> AsyncIterator[tuple[Running, Stream]]:
    """A gateway on ``clock`` and one open stream of ``workflow_id``."""
    async with (
        running_gateway(settings, clock=clock) as gw,
        gw.client.get(f"/workflows/{workflow_id}/events") as response,
    ):
        yield gw, Stream(response)


async def test_the_first_event_is_the_status_the_status_route_gives(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    async with watching(watch_settings(participants), clock) as (gw, stream):
        first = await stream.next()
        status = await gw.client.get("/workflows/order-42/status")
        body = await status.read()
    assert stream.response.status == 200
    assert stream.response.headers["Content-Type"] == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-store, no-transform"
    assert len(stream.response.headers["X-Request-ID"]) == 32
    assert stream.retry == [2000]
    assert first is not None and first.kind == "status"
    assert first.id == status.headers["ETag"]
    # The same answer but where its parts came from: now the cache.
    event, answered = json.loads(first.data), json.loads(body)
    for shown in (event, answered):
        for part in shown["participants"].values():
            part["source"] = "cache" if part["source"] == "live" else part["source"]
    assert event == answered
    assert len(participants.requests_to("payment")) == 1


async def test_an_event_per_change_never_for_ages_alone(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    async with watching(watch_settings(participants), clock) as (_gw, stream):
        first = await stream.next()
        await clock.sleeping()
        clock.advance(TTL)  # asked again: the same parts, older
        await clock.sleeping()
        participants.behaviours["shipping"] = answer("shipping", "delivered", version=2)
        clock.advance(TTL)
        second = await stream.next()
        end = await stream.next()
    assert first is not None and second is not None
    assert first.status().status == "in_transit"
    assert (second.kind, second.status().status) == ("final", "delivered")
    assert second.id != first.id
    assert end is None  # a final status ends the stream
    assert len(participants.requests_to("shipping")) == 3


async def test_watchers_of_one_workflow_share_one_poller(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    async with running_gateway(watch_settings(participants), clock=clock) as gw:
        responses = [await gw.client.get("/workflows/order-42/events") for _ in range(20)]
        streams = [Stream(response) for response in responses]
        firsts = [await stream.next() for stream in streams]
        for _ in range(3):
            await clock.sleeping()
            clock.advance(TTL)
        await clock.sleeping()
        metrics = await (await gw.client.get("/metrics")).text()
        for response in responses:
            response.close()
    assert len({event.id for event in firsts if event is not None}) == 1
    assert [len(participants.requests_to(name)) for name in PATHS] == [4, 4, 4]
    assert "aggregator_watchers 20.0" in metrics
    assert "aggregator_watched_workflows 1.0" in metrics


async def test_a_reconnect_with_the_current_id_waits_for_a_change(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    async with (
        running_gateway(watch_settings(participants), clock=clock) as gw,
        gw.client.get("/workflows/order-42/events") as response,
    ):
        seen = await Stream(response).next()
        assert seen is not None
        headers = {"Last-Event-ID": seen.id or ""}
        async with gw.client.get("/workflows/order-42/events", headers=headers) as response:
            stream = Stream(response)
            await clock.sleeping()
            participants.behaviours["inventory"] = answer("inventory", "released", version=2)
            clock.advance(TTL)
            resumed = await stream.next()
        stale_id = {"Last-Event-ID": 'W/"not-this-one"'}
        async with gw.client.get("/workflows/order-42/events", headers=stale_id) as response:
            at_once = await Stream(response).next()
    assert resumed is not None and resumed.status().participants["inventory"].state == "released"
    assert at_once is not None and at_once.id == resumed.id


async def test_a_participant_going_dark_and_back_is_an_event_each_way(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    shipping = participants.behaviours["shipping"]

    async def down(_: web.Request) -> web.StreamResponse:
        return web.Response(status=503)

    async with watching(watch_settings(participants), clock) as (_gw, stream):
        await stream.next()
        await clock.sleeping()
        participants.behaviours["shipping"] = down
        clock.advance(TTL)
        dark = await stream.next()
        await clock.sleeping()
        participants.behaviours["shipping"] = shipping
        clock.advance(TTL)
        back = await stream.next()
    assert dark is not None and back is not None
    part = dark.status().participants["shipping"]
    assert (part.source, part.age_ms, dark.status().complete) == ("stale", 2000, False)
    assert back.status().participants["shipping"].source == "live"
    assert back.status().complete


async def test_refusals_come_before_the_stream_as_problems(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    limits = {"max_watchers_per_workflow": 1}
    settings = watch_settings(participants, watch=limits)
    async with (
        running_gateway(settings, clock=ManualClock()) as gw,
        gw.client.get("/workflows/order-42/events") as held,
    ):
        assert await Stream(held).next() is not None
        crowded = await gw.client.get("/workflows/order-42/events")
        crowded_problem = await problem_of(crowded)
        bad = await gw.client.get("/workflows/bad%20id/events")
        bad_problem = await problem_of(bad)
        participants.behaviours.clear()  # nobody has a record
        unknown = await gw.client.get("/workflows/order-43/events")
        unknown_problem = await problem_of(unknown)
        head = await gw.client.head("/workflows/order-42/events")
    assert (crowded.status, crowded_problem.type.endswith(":overloaded")) == (503, True)
    assert crowded.headers["Retry-After"] == "1"
    assert "1 watchers of one workflow at most" in (crowded_problem.detail or "")
    assert (bad.status, bad_problem.type.endswith(":invalid-workflow-id")) == (400, True)
    assert (unknown.status, unknown_problem.type.endswith(":workflow-not-found")) == (404, True)
    assert head.status == 405


async def test_streams_are_not_counted_against_concurrent_requests(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    settings = watch_settings(participants, gateway={"max_concurrent_requests": 1})
    async with (
        running_gateway(settings, clock=ManualClock()) as gw,
        gw.client.get("/workflows/order-42/events") as held,
    ):
        assert await Stream(held).next() is not None
        status = await gw.client.get("/workflows/order-43/status")
    assert status.status == 200


async def test_with_auth_a_stream_is_per_tenant_and_private(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    auth = {"auth": {"enabled": True, "keys": {KEY: "acme"}}}
    async with running_gateway(
        watch_settings(participants, gateway=auth), clock=ManualClock()
    ) as gw:
        refused = await gw.client.get("/workflows/order-42/events")
        refused_problem = await problem_of(refused)
        headers = {"X-API-Key": KEY}
        async with gw.client.get("/workflows/order-42/events", headers=headers) as response:
            event = await Stream(response).next()
    assert refused.status == 401 and refused_problem.type.endswith(":unauthorized")
    assert event is not None and event.kind == "status"
    assert response.headers["Cache-Control"] == "no-store, no-transform"
    assert response.headers["Vary"] == "Authorization, X-API-Key"
    assert participants.requests_to("payment")[0].headers["X-Tenant-ID"] == "acme"


async def test_idle_streams_get_heartbeats(participants: LoopbackParticipants) -> None:
    healthy(participants)
    settings = watch_settings(participants, watch={"heartbeat_ms": 20})
    async with watching(settings, ManualClock()) as (_gw, stream):
        await stream.next()
        heartbeat = await asyncio.wait_for(_comment(stream), timeout=30)
    assert heartbeat == "heartbeat"


async def _comment(stream: Stream) -> str:
    while not stream.comments:
        line = await stream.response.content.readline()
        assert line, "the stream ended before a heartbeat"
        if line.startswith(b":"):
            stream.comments.append(line.decode()[1:].strip())
    return stream.comments[0]


async def test_shutdown_ends_streams_cleanly(participants: LoopbackParticipants) -> None:
    """The server shuts down while a client watches: its stream ends as a stream
    does, not cut off."""
    healthy(participants)
    clock = ManualClock()
    app = create_app(watch_settings(participants), clock=clock, sleep=clock.sleep)
    server = TestServer(app)
    await server.start_server(access_log=None)
    async with aiohttp.ClientSession() as client:
        response = await client.get(server.make_url("/workflows/order-42/events"))
        assert await Stream(response).next() is not None
        reader = asyncio.create_task(response.content.read())  # raises if cut short
        await server.close()
        rest = await asyncio.wait_for(reader, timeout=30)
        response.close()
    assert rest == b""


async def test_a_client_that_leaves_stops_the_poller(participants: LoopbackParticipants) -> None:
    healthy(participants)
    clock = ManualClock()
    async with running_gateway(watch_settings(participants), clock=clock) as gw:
        watches = gw.app[GATEWAY].aggregator.watches
        response = await gw.client.get("/workflows/order-42/events")
        await Stream(response).next()
        response.close()
        await eventually(lambda: watches.workflows == 0)
        clock.advance(10 * TTL)
        metrics = await (await gw.client.get("/metrics")).text()
    assert len(participants.requests_to("payment")) == 1
    assert "aggregator_watchers 0.0" in metrics


class _Transport:
    def __init__(self, pending: int) -> None:
        self.pending = pending

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.pending


class _Response:
    """Records what is written; a write to a stalled client never returns."""

    def __init__(self, stalled: bool) -> None:
        self.stalled = stalled
        self.written: list[bytes] = []
        self.beaten = asyncio.Event()

    async def write(self, data: bytes) -> None:
        if self.stalled:
            await asyncio.Event().wait()
        self.written.append(data)
        self.beaten.set()


async def test_a_client_that_does_not_read_holds_up_no_other_stream_s_heartbeat() -> None:
    streams = Streams(heartbeat=0.001)
    stalled, idle = _Response(stalled=True), _Response(stalled=False)
    beating = asyncio.create_task(streams.beat())
    try:
        with (
            streams.opened(stalled, _Transport(pending=70_000)),  # type: ignore[arg-type]
            streams.opened(idle, _Transport(pending=0)),  # type: ignore[arg-type]
        ):
            for _ in range(3):  # three rounds: none waits on the stalled client
                idle.beaten.clear()
                await asyncio.wait_for(idle.beaten.wait(), timeout=30)
    finally:
        beating.cancel()
    assert idle.written[:3] == [b": heartbeat\n\n"] * 3
    assert stalled.written == []


async def test_a_reconnect_after_the_final_event_is_told_to_stop(
    participants: LoopbackParticipants,
) -> None:
    """204 is what stops an EventSource from reconnecting: a 200 that ends would have
    it come back every ``retry`` for ever."""
    participants.behaviours["payment"] = answer("payment", "failed")
    async with running_gateway(watch_settings(participants), clock=ManualClock()) as gw:
        async with gw.client.get("/workflows/order-42/events") as response:
            final = await Stream(response).next()
        assert final is not None and final.kind == "final"
        again = await gw.client.get(
            "/workflows/order-42/events", headers={"Last-Event-ID": final.id or ""}
        )
        older = await gw.client.get(
            "/workflows/order-42/events", headers={"Last-Event-ID": 'W/"older"'}
        )
        resent = await Stream(older).next()
    assert again.status == 204 and await again.read() == b""
    assert resent is not None and (resent.kind, resent.id) == ("final", final.id)


async def test_a_stream_s_first_answer_counts_against_concurrent_requests(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await release.wait()
        return await answer("shipping", "in_transit")(request)

    participants.behaviours["shipping"] = held
    settings = watch_settings(participants, gateway={"max_concurrent_requests": 1})
    async with running_gateway(settings, clock=ManualClock()) as gw:
        busy = asyncio.create_task(gw.client.get("/workflows/order-42/status"))
        await arrived.wait()
        refused = await gw.client.get("/workflows/order-43/events")
        refusal = await problem_of(refused)
        release.set()
        (await busy).close()
    assert refused.status == 503 and refusal.type.endswith(":overloaded")


async def test_a_workflow_no_participant_knows_any_more_ends_its_stream(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    async with watching(watch_settings(participants), clock) as (gw, stream):
        assert await stream.next() is not None
        await clock.sleeping()
        participants.behaviours.clear()  # every participant: no record
        clock.advance(TTL)
        end = await stream.next()
        again = await gw.client.get("/workflows/order-42/events")
    assert end is None
    assert again.status == 404


async def test_the_heartbeat_ends_a_stream_whose_connection_has_closed() -> None:
    """Without aiohttp's handler_cancellation (gunicorn's worker), nothing else would
    end a stream whose client left before the workflow changed."""
    streams = Streams(heartbeat=0.001)

    class Closed(_Transport):
        def is_closing(self) -> bool:
            return True

    async def handler() -> None:
        with streams.opened(_Response(stalled=False), Closed(pending=0)):  # type: ignore[arg-type]
            await asyncio.Event().wait()  # waiting for a change that does not come

    waiting = asyncio.create_task(handler())
    beating = asyncio.create_task(streams.beat())
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, timeout=30)
    finally:
        beating.cancel()
    assert len(streams) == 0


async def test_a_write_the_client_does_not_take_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "WRITE_TIMEOUT_S", 0.01)
    with pytest.raises(TimeoutError):
        await events.send(
            _Response(stalled=True),  # type: ignore[arg-type]
            _Transport(pending=70_000),  # type: ignore[arg-type]
            b"data: x\n\n",
        )


async def test_a_frame_larger_than_the_buffer_is_timed_even_into_an_empty_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond the high-water mark a write into an empty buffer waits for the client too."""

    class Empty(_Transport):
        def get_write_buffer_limits(self) -> tuple[int, int]:
            return (16_384, 65_536)

    monkeypatch.setattr(events, "WRITE_TIMEOUT_S", 0.01)
    with pytest.raises(TimeoutError):
        await events.send(
            _Response(stalled=True),  # type: ignore[arg-type]
            Empty(pending=0),  # type: ignore[arg-type]
            b"data: %b\n\n" % (b"x" * 70_000),
        )
