"""Real aiohttp participant servers on 127.0.0.1, behaviour chosen per test."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

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

    def url(self, participant: str) -> str:
        return f"{self.base_url}/{PATHS[participant]}/{{workflow_id}}"

    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in PATHS}

    def requests_to(self, participant: str) -> list[web.Request]:
        return [r for r in self.received if r.path.startswith(f"/{PATHS[participant]}/")]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(request)
        participant = next((n for n, p in PATHS.items() if request.path.startswith(f"/{p}/")), None)
        behaviour = self.behaviours.get(participant or "", no_record)
        return await behaviour(request)


@pytest.fixture
async def participants() -> AsyncIterator[LoopbackParticipants]:
    server = LoopbackParticipants()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
