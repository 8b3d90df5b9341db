"""``status-aggregator watch``, run as a user runs it: a real process."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.gateway.harness import gateway_settings, running_gateway
from tests.gateway.test_cli import run, write_config
from tests.loopback import LoopbackParticipants, answer, healthy


async def test_watch_through_a_gateway_prints_a_line_per_change_until_final(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    settings = gateway_settings(participants, cache={"ttl_ms": 200})
    async with running_gateway(settings) as gw:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "aggregator", "watch", "order-42", "--gateway", gw.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 60)
        participants.behaviours["shipping"] = answer("shipping", "delivered", version=2)
        rest, err = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, err) == (0, b"")
    line = first.decode()
    assert " order-42 in_transit (complete): payment captured (live)" in line
    assert "shipping in_transit (live)" in line
    (last,) = rest.decode().splitlines()
    assert " order-42 delivered (complete): " in last and last.endswith("; final")


async def test_watch_embedded_as_json_lines(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    participants.behaviours["payment"] = answer("payment", "failed")
    config = write_config(tmp_path / "a.toml", participants)
    code, out, err = await run("watch", "order-7", "--config", str(config), "--json")
    assert (code, err) == (0, "")
    (only,) = out.splitlines()  # failed: over at once
    event = json.loads(only)
    assert event["final"] is True and event["status"]["status"] == "payment_failed"


async def test_watch_refusals_are_one_line_with_the_status_exit_codes(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    config = write_config(tmp_path / "a.toml", participants)
    code, out, err = await run("watch", "order-9999", "--config", str(config))
    assert (code, out) == (1, "")
    assert err == "status-aggregator: order-9999: no participant has a record of this workflow\n"
    code, _, err = await run("watch", "a/b", "--config", str(config))
    assert code == 2 and "is not allowed" in err and err.count("\n") == 1
    async with running_gateway(gateway_settings(participants)) as gw:
        code, _, err = await run("watch", "order-9999", "--gateway", gw.url)
        assert code == 1 and err.startswith("status-aggregator: HTTP 404: no participant")
        code, _, err = await run("watch", "../x", "--gateway", gw.url)
        assert code == 2 and "HTTP 400" in err
    code, _, err = await run("watch", "x", "--gateway", "http://127.0.0.1:1")
    assert code == 1 and err.startswith("status-aggregator: cannot read") and err.count("\n") == 1


async def watch_through(
    events: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[int, str, str]:
    """``watch order-42`` through a stand-in gateway whose event route is ``events``."""
    app = web.Application()
    app.router.add_get("/workflows/{workflow_id}/events", events)
    server = TestServer(app)
    await server.start_server()
    try:
        return await run("watch", "order-42", "--gateway", str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def test_watch_follows_a_gateway_through_a_drop_and_a_503(
    participants: LoopbackParticipants,
) -> None:
    """A stream that drops is resumed with Last-Event-ID; a 503 once followed (a
    gateway restarting, overloaded) is waited out, not the end of the watch."""
    healthy(participants)
    async with (
        running_gateway(gateway_settings(participants)) as real,
        real.client.get("/workflows/order-42/status") as response,
    ):
        status, validator = await response.read(), response.headers["ETag"]
    participants.behaviours["shipping"] = answer("shipping", "delivered", version=2)
    async with (
        running_gateway(gateway_settings(participants)) as real,
        real.client.get("/workflows/order-42/status") as response,
    ):
        final = await response.read()
    asked: list[str | None] = []

    async def events(request: web.Request) -> web.StreamResponse:
        asked.append(request.headers.get("Last-Event-ID"))
        if len(asked) == 2:
            return web.Response(status=503, headers={"Retry-After": "1"})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        if len(asked) == 1:  # one event, then the connection drops
            await stream.write(
                b"event: status\nid: %b\ndata: %b\n\n" % (validator.encode(), status)
            )
        else:
            await stream.write(b'event: final\nid: W/"f"\ndata: %b\n\n' % final)
        return stream

    code, out, err = await watch_through(events)
    assert (code, err) == (0, "")
    assert asked == [None, validator, validator]
    first, last = out.splitlines()
    assert " in_transit (complete)" in first and last.endswith("; final")


async def test_watch_backs_off_from_a_gateway_that_keeps_answering_503(
    participants: LoopbackParticipants,
) -> None:
    """Retry-After 0, or one that is not a number, never makes the watch spin: each
    wait is at least twice the last (lower bounds only: a busy machine waits longer)."""
    healthy(participants)
    async with (
        running_gateway(gateway_settings(participants)) as real,
        real.client.get("/workflows/order-42/status") as response,
    ):
        status = await response.read()
    arrivals: list[float] = []

    async def events(request: web.Request) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        if len(arrivals) in (2, 3):
            retry_after = "0" if len(arrivals) == 2 else "soon"
            return web.Response(status=503, headers={"Retry-After": retry_after})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        kind = b"status" if len(arrivals) == 1 else b"final"
        await stream.write(b'event: %b\nid: W/"a"\ndata: %b\n\n' % (kind, status))
        return stream

    code, out, err = await watch_through(events)
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 2
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 3
    assert all(gap >= least for gap, least in zip(gaps, (0.49, 0.99, 1.99), strict=True)), gaps
