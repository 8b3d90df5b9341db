"""Real aiohttp participant servers on 127.0.0.1, behaviour chosen per test.

The fixtures are registered in tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.helpers import body

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATHS = {"payment": "payments", "inventory": "reservations", "shipping": "shipments"}


async def no_record(_: web.Request) -> web.StreamResponse:
    return web.json_response({"title": "no record"}, status=404)


@dataclass
class LoopbackParticipants:
    """One server that plays all three participants; records every request it gets."""

    base_url: str = ""
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[web.Request] = field(default_factory=list)
    _waiting: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def url(self, participant: str) -> str:
        return f"{self.base_url}/{PATHS[participant]}/{{workflow_id}}"

    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in PATHS}

    def requests_to(self, participant: str) -> list[web.Request]:
        return [r for r in self.received if r.path.startswith(f"/{PATHS[participant]}/")]

    async def until_received(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        if len(self.received) < count:
            event = asyncio.Event()
            self._waiting.append((count, event))
            await event.wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(request)
        for count, event in self._waiting:
            if len(self.received) >= count:
                event.set()
        participant = next((n for n, p in PATHS.items() if request.path.startswith(f"/{p}/")), None)
        behaviour = self.behaviours.get(participant or "", no_record)
        return await behaviour(request)


def answer(participant: str, state: str, **extra: Any) -> Behaviour:
    """A behaviour answering a valid v1 body for whatever id was asked."""

    async def respond(request: web.Request) -> web.StreamResponse:
        workflow_id = request.match_info.get("tail", request.path).rsplit("/", 1)[1]
        return web.Response(
            body=body(participant, unquote(workflow_id), state, **extra),
            content_type="application/json",
        )

    return respond


def healthy(server: LoopbackParticipants) -> None:
    server.behaviours.update(
        payment=answer("payment", "captured"),
        inventory=answer("inventory", "reserved"),
        shipping=answer("shipping", "in_transit"),
    )


@pytest.fixture
async def participants() -> AsyncIterator[LoopbackParticipants]:
    server = LoopbackParticipants()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    # A call the aggregator gives up on ends its handler here too (TestServer cancels
    # handlers, as production does).
    running = TestServer(app)
    await running.start_server(access_log=None)
    server.base_url = str(running.make_url("")).rstrip("/")
    try:
        yield server
    finally:
        await running.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
