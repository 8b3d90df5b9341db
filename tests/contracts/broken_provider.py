"""A provider that breaks the payment contract in a different way for each case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

GOOD = {
    "version": 2,
    "updated_at": "2026-01-01T10:00:00Z",
    "amount": 1999,
    "currency": "EUR",
}


def payload(workflow_id: str, state: str, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {"workflow_id": workflow_id, "state": state, **GOOD, **changes}
    return {k: v for k, v in body.items() if v is not None}


class BrokenPayment:
    """Each provider state (and some ids) answers wrongly in its own way."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    async def set_state(self, request: web.Request) -> web.StreamResponse:
        wanted = await request.json()
        self.states[wanted["workflow_id"]] = wanted["state"]
        return web.json_response({}, status=201)

    async def query(self, request: web.Request) -> web.StreamResponse:
        workflow_id = request.match_info["workflow_id"]
        if workflow_id.startswith("contract-unknown"):
            return web.json_response(payload(workflow_id, "pending"))  # 200 for the unknown
        if workflow_id.startswith("Contract-UPPER"):
            return web.Response(text="<html><body>Payment</body></html>", content_type="text/html")
        if workflow_id.startswith("contract.dots"):
            body = json.dumps(payload(workflow_id, "pending"))
            return web.Response(text=body, content_type="text/plain")
        if "X-Request-ID" in request.headers:  # extra fields are fine
            return web.json_response(payload(workflow_id, "pending", risk="low", region="eu"))
        state = self.states.get(workflow_id)
        if state is None:
            return web.Response(status=404)
        if state == "authorized":
            return web.json_response(payload(workflow_id, state, amount="lots"))
        if state == "captured":
            return web.json_response(payload(workflow_id, state, version=None))
        if state == "failed":
            return web.json_response(payload(workflow_id, "declined"))
        if state == "refunded":
            return web.Response(status=500, text="internal error")
        return web.json_response(payload(workflow_id, state))


@asynccontextmanager
async def broken_payment() -> AsyncIterator[str]:
    provider = BrokenPayment()
    app = web.Application()
    app.router.add_post("/_contract/state", provider.set_state)
    app.router.add_get("/payments/{workflow_id}", provider.query)
    server = TestServer(app)
    await server.start_server(access_log=None)
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
