"""The access log: none of its lines is lost."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from aggregator.gateway import _logs, process_app
from aggregator.gateway._lines import BatchedStreamHandler
from tests.gateway.harness import gateway_settings
from tests.loopback import LoopbackParticipants, healthy


@pytest.fixture
def process_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """``configure_logging`` changes the process's logging; it is put back after.
    The stream yielded stands for stderr (see ``to``)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(_logs, "_configured", None)
    try:
        yield io.StringIO()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def to(stream: io.StringIO) -> BatchedStreamHandler:
    """The handler ``configure_logging`` installed, writing to ``stream``."""
    handler = _logs._configured
    assert handler is not None
    handler.setStream(stream)
    return handler


async def test_a_clean_shutdown_writes_every_access_line(
    process_logging: io.StringIO, participants: LoopbackParticipants
) -> None:
    """Lines still waiting, those of a request answered while the gateway shuts
    down included, are written by the end of the application's cleanup."""
    healthy(participants)
    release = asyncio.Event()
    answer_payment = participants.behaviours["payment"]

    async def slow(request: web.Request) -> web.StreamResponse:
        if "o-slow" in request.path:
            await release.wait()
        return await answer_payment(request)

    participants.behaviours["payment"] = slow
    settings = gateway_settings(participants)
    gateway = settings.gateway.model_copy(update={"gc_young_threshold": 0})
    app = process_app(settings.model_copy(update={"gateway": gateway}))
    to(process_logging)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=60)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/workflows"

    async with aiohttp.ClientSession() as client:

        async def ask(workflow_id: str, request_id: str) -> int:
            headers = {"X-Request-ID": request_id}
            async with client.get(f"{base}/{workflow_id}/status", headers=headers) as response:
                return response.status

        assert [await ask(f"o-{n}", f"quick-{n}") for n in range(5)] == [200] * 5
        slow_one = asyncio.create_task(ask("o-slow", "slow-1"))
        while not any("o-slow" in r.path for r in participants.requests_to("payment")):
            await participants.until_received(len(participants.received) + 1)
        closing = asyncio.create_task(runner.cleanup())
        await asyncio.sleep(0)  # the cleanup has begun: no new connection is taken
        release.set()
        assert await slow_one == 200
        await closing
    lines = process_logging.getvalue().splitlines()
    access = [line for line in lines if " aggregator.access: " in line]
    ids = [line.split("[", 1)[1].split("]", 1)[0] for line in access]
    assert sorted(ids) == sorted([*(f"quick-{n}" for n in range(5)), "slow-1"])
    assert all(" 200 " in line for line in access)
