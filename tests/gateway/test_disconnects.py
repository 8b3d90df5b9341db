"""A client that goes away is not a server error, and takes its own work with it;
a request the HTTP parser refuses is one warning line, not a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from aggregator import Settings
from aggregator.gateway import GATEWAY
from aggregator.gateway._logs import ParserRefusals
from tests.gateway.harness import Running, gateway_settings, running_gateway
from tests.loopback import Behaviour, LoopbackParticipants, answer, healthy


class Records(logging.Handler):
    """Every record under the loggers watched; ``gone`` is set on a 499 line."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.gone = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if getattr(record, "status", None) == 499:
            self.gone.set()

    def at_least(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("aggregator", "aiohttp")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def send_and_leave(gw: Running, head: bytes, *, leave: asyncio.Event | None = None) -> None:
    """Send ``head`` on a connection of its own, then close it (once ``leave`` is set)."""
    port = int(gw.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    if leave is not None:
        await leave.wait()
    writer.close()
    await writer.wait_closed()


ASK = b"GET /workflows/o-1/status HTTP/1.1\r\nHost: gw\r\n\r\n"


def slow_shipping(participants: LoopbackParticipants, behaviour: Behaviour) -> Settings:
    """Shipping answers by ``behaviour``, with a minute to do it: only a cancellation
    ends its calls early."""
    healthy(participants)
    participants.behaviours["shipping"] = behaviour
    slow = {"url": participants.url("shipping"), "timeout_ms": 60_000}
    return gateway_settings(participants, participants={"shipping": slow}, deadline_ms=60_000)


async def counted(gw: Running) -> str:
    return await (await gw.client.get("/metrics")).text()


def requests_with(status: int, text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith("aggregator_http_requests_total{") and f'status="{status}"' in line
    ]


async def test_a_body_cut_short_is_a_client_gone_not_a_500(
    participants: LoopbackParticipants, records: Records
) -> None:
    head = (
        b"POST /workflows/status:batch HTTP/1.1\r\nHost: gw\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"ids": []}'
    )
    async with running_gateway(gateway_settings(participants)) as gw:
        await send_and_leave(gw, head)
        await asyncio.wait_for(records.gone.wait(), 30)  # bounds a hang only
        metrics = await counted(gw)
    assert records.at_least(logging.WARNING) == []
    gone = [r for r in records.records if getattr(r, "status", None) == 499]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO and gone[0].exc_info is None
    assert len(requests_with(499, metrics)) == 1 and requests_with(500, metrics) == []


async def test_a_client_gone_while_its_answer_is_made_cancels_the_calls_it_alone_made(
    participants: LoopbackParticipants, records: Records
) -> None:
    healthy(participants)
    held = asyncio.Event()
    hung_up = asyncio.Event()

    async def hold(_: web.Request) -> web.StreamResponse:
        held.set()
        try:
            await asyncio.Event().wait()
        finally:
            hung_up.set()  # the aggregator closed the connection: the call was cancelled
        raise AssertionError("unreachable")

    async with running_gateway(slow_shipping(participants, hold)) as gw:
        shipping = gw.app[GATEWAY].aggregator.pipeline("shipping")
        leave = asyncio.Event()
        client = asyncio.create_task(send_and_leave(gw, ASK, leave=leave))
        await asyncio.wait_for(held.wait(), 30)
        (call,) = shipping.in_flight()
        leave.set()
        await client
        await asyncio.wait_for(records.gone.wait(), 30)
        await asyncio.wait_for(hung_up.wait(), 30)
        await asyncio.wait({call}, timeout=30)
        metrics = await counted(gw)
        breaker = gw.app[GATEWAY].aggregator.breaker_states()["shipping"]
    assert call.cancelled()  # not left to run for nobody until its 60 s timeout
    assert shipping.breaker.consecutive_failures == 0 and breaker == "closed"
    assert records.at_least(logging.WARNING) == []
    assert len(requests_with(499, metrics)) == 1 and requests_with(500, metrics) == []


async def test_a_call_shared_with_a_caller_still_waiting_goes_on(
    participants: LoopbackParticipants, records: Records
) -> None:
    healthy(participants)
    release = asyncio.Event()
    asked = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        asked.set()
        await release.wait()
        return await answer("shipping", "in_transit")(request)

    async with running_gateway(slow_shipping(participants, hold)) as gw:
        shipping = gw.app[GATEWAY].aggregator.pipeline("shipping")
        leave = asyncio.Event()
        leaving = asyncio.create_task(send_and_leave(gw, ASK, leave=leave))
        await asyncio.wait_for(asked.wait(), 30)
        staying = asyncio.create_task(gw.client.get("/workflows/o-1/status"))

        async def joined() -> None:  # the second caller shares the call (and stays so)
            while shipping.stats.coalesced == 0:  # noqa: ASYNC110 - no event tells it
                await asyncio.sleep(0)

        await asyncio.wait_for(joined(), 30)
        leave.set()
        await leaving
        await asyncio.wait_for(records.gone.wait(), 30)
        release.set()
        response = await staying
        body = await response.json()
    assert response.status == 200
    assert body["participants"]["shipping"]["outcome"] == "ok"
    assert len(participants.requests_to("shipping")) == 1


async def test_a_refused_request_is_one_warning_line_with_the_peer(
    participants: LoopbackParticipants, records: Records
) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /workflows/a\x00b/status HTTP/1.1\r\nHost: gw\r\n\r\n")
        await writer.drain()
        answered = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    assert answered.split(b" ", 2)[1] == b"400"
    (line,) = [r for r in records.records if r.name == "aiohttp.server"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert line.getMessage() == (
        "refused a malformed request from 127.0.0.1: HTTP 400, Invalid char in url path"
    )


def test_refusals_are_rate_limited_and_the_left_out_counted() -> None:
    now = [0.0]
    refusals = ParserRefusals(burst=3, window=60, clock=lambda: now[0])

    def refuse() -> logging.LogRecord | None:
        from aiohttp.http_exceptions import BadHttpMessage

        try:
            raise BadHttpMessage("Invalid header value char")
        except BadHttpMessage:
            import sys

            record = logging.LogRecord(
                "aiohttp.server",
                logging.ERROR,
                __file__,
                1,
                "Error handling request from %s",
                ("10.1.2.3",),
                sys.exc_info(),
            )
        return record if refusals.filter(record) else None

    kept = [refuse() for _ in range(5)]
    assert [r is not None for r in kept] == [True, True, True, False, False]
    now[0] = 61
    later = refuse()
    assert later is not None and later.levelno == logging.WARNING and later.exc_info is None
    assert later.getMessage() == (
        "refused a malformed request from 10.1.2.3: HTTP 400, Invalid header value char"
        " (2 more refused since the last line, not logged)"
    )
    other = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "other", (), None)
    assert refusals.filter(other) and other.levelno == logging.ERROR
