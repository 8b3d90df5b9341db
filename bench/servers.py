"""The servers a benchmark run needs, each started as its own process.

python bench/servers.py participant --name payment --port 9101 [--delay-ms 20]
python bench/servers.py ceiling --port 9201 --size 1200
python bench/servers.py naive --port 9202 --participants URL URL URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import uvloop
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from contracts import QUERY_PATHS

STATES = {"payment": "captured", "inventory": "reserved", "shipping": "in_transit"}
PATHS = QUERY_PATHS  # participant -> "/<path>/{workflow_id}"
DOMAIN: dict[str, dict[str, object]] = {
    "payment": {"amount": 1999, "currency": "EUR"},
    "inventory": {"items": [{"sku": "book-1", "quantity": 1}]},
    "shipping": {"carrier": "parcelco", "tracking_number": "PC123"},
}


def participant_app(name: str, delay_ms: float) -> web.Application:
    """Answers every id at once (or after a delay); can be told to stall or to fail
    (503); counts queries."""
    mode = {"delay_ms": delay_ms, "stall": False, "fail": False}
    counter = {"queries": 0}
    stalled = asyncio.Event()

    async def query(request: web.Request) -> web.Response:
        counter["queries"] += 1
        if mode["stall"]:
            await stalled.wait()
        if mode["delay_ms"]:
            await asyncio.sleep(float(mode["delay_ms"]) / 1000)
        if mode["fail"]:
            return web.json_response({"title": "failing on purpose"}, status=503)
        body = {
            "workflow_id": request.match_info["workflow_id"],
            "state": STATES[name],
            "version": 1,
            "updated_at": "2026-01-01T10:00:00Z",
            **DOMAIN[name],
        }
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    async def count(_: web.Request) -> web.Response:
        return web.json_response(counter)

    async def set_mode(request: web.Request) -> web.Response:
        mode.update(await request.json())
        counter["queries"] = 0
        return web.json_response(mode)

    app = web.Application()
    app.router.add_get(PATHS[name], query)
    app.router.add_get("/_count", count)
    app.router.add_put("/_mode", set_mode)
    return app


def ceiling_app(size: int) -> web.Application:
    """Nothing can be faster on this stack: fixed bytes for any path."""
    payload = json.dumps({"pad": "x" * max(0, size - 10)}).encode()

    async def fixed(_: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", fixed)
    return app


def naive_app(participants: Sequence[str]) -> web.Application:
    """What a developer writes in an afternoon: gather the three, return their JSON."""
    sessions: list[ClientSession] = []

    async def on_startup(_: web.Application) -> None:
        sessions.append(
            ClientSession(connector=TCPConnector(limit=256), timeout=ClientTimeout(total=1))
        )

    async def on_cleanup(_: web.Application) -> None:
        await sessions[0].close()

    async def fetch(url: str) -> object:
        async with sessions[0].get(url) as response:
            return await response.json()

    async def status(request: web.Request) -> web.Response:
        workflow_id = request.match_info["workflow_id"]
        parts = await asyncio.gather(
            *(fetch(template.replace("{workflow_id}", workflow_id)) for template in participants)
        )
        body = {"workflow_id": workflow_id, "participants": dict(zip(PATHS, parts, strict=True))}
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/workflows/{workflow_id}/status", status)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/servers.py")
    roles = parser.add_subparsers(dest="role", required=True)
    one = roles.add_parser("participant")
    one.add_argument("--name", choices=sorted(STATES), required=True)
    one.add_argument("--delay-ms", type=float, default=0.0)
    ceiling = roles.add_parser("ceiling")
    ceiling.add_argument("--size", type=int, required=True)
    naive = roles.add_parser("naive")
    naive.add_argument("--participants", nargs=3, required=True)
    for role in (one, ceiling, naive):
        role.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.role == "participant":
        app = participant_app(args.name, args.delay_ms)
    elif args.role == "ceiling":
        app = ceiling_app(args.size)
    else:
        app = naive_app(args.participants)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
