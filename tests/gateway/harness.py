"""A real gateway on 127.0.0.1 and a client session pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate as validate_openapi
from opentelemetry.trace import TracerProvider

from aggregator import Settings
from aggregator.gateway import create_app
from aggregator.testing import ManualClock
from tests.helpers import settings as make_settings
from tests.loopback import LoopbackParticipants


@dataclass
class Running:
    url: str
    client: aiohttp.ClientSession
    app: web.Application


@asynccontextmanager
async def running_gateway(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Running]:
    if isinstance(clock, ManualClock):  # its watches sleep on it too
        app = create_app(settings, clock=clock, sleep=clock.sleep, tracer_provider=tracer_provider)
    elif clock:
        app = create_app(settings, clock=clock, tracer_provider=tracer_provider)
    else:
        app = create_app(settings, tracer_provider=tracer_provider)
    server = TestServer(app)  # on 127.0.0.1, a free port, handlers cancelled as in production
    await server.start_server(access_log=None)
    url = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession(base_url=url) as client:
            yield Running(url, client, app)
    finally:
        await server.close()


def gateway_settings(server: LoopbackParticipants, **overrides: Any) -> Settings:
    return make_settings(server.urls(), **overrides)


async def documented_routes(gw: Running) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """The gateway's OpenAPI document, checked valid and describing every route the
    application answers (path and method), and those routes."""
    document: dict[str, Any] = await (await gw.client.get("/openapi.json")).json()
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in gw.app.router.routes()
        if route.resource is not None and route.method != "*"
    }
    validate_openapi(document)
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == described
    return document, routes
