"""Payment providers for testing the kit: one that breaks the contract in a
different way for each case, a good one, and variants of the good one that each
break one thing the aggregator relies on."""

from __future__ import annotations

import asyncio
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
        self.versions: dict[str, int] = {}

    async def set_state(self, request: web.Request) -> web.StreamResponse:
        wanted = await request.json()
        self.states[wanted["workflow_id"]] = wanted["state"]
        self.versions[wanted["workflow_id"]] = self.versions.get(wanted["workflow_id"], 0) + 1
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
        if not workflow_id.startswith(f"contract-{state}-"):  # the defects are the state cases'
            return web.json_response(
                payload(workflow_id, state, version=self.versions[workflow_id])
            )
        if state == "authorized":
            return web.json_response(payload(workflow_id, state, amount="lots"))
        if state == "captured":
            return web.json_response(payload(workflow_id, state, version=None))
        if state == "failed":
            return web.json_response(payload(workflow_id, "declined"))
        if state == "refunded":
            return web.Response(status=500, text="internal error")
        return web.json_response(payload(workflow_id, state))


class Payment:
    """A payment provider that keeps the contract; the variants below break it."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[str, int]] = {}

    async def set_state(self, request: web.Request) -> web.StreamResponse:
        wanted = await request.json()
        _, version = self.records.get(wanted["workflow_id"], ("", 0))
        self.records[wanted["workflow_id"]] = (wanted["state"], version + 1)
        return web.json_response({}, status=201)

    def looked_up(self, request: web.Request) -> str:
        return request.match_info["workflow_id"]

    async def query(self, request: web.Request) -> web.StreamResponse:
        workflow_id = self.looked_up(request)
        record = self.records.get(workflow_id)
        if record is None:
            return web.Response(status=404)
        return await self.answer(workflow_id, *record)

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        return web.json_response(payload(workflow_id, state, version=version))


class SlowPayment(Payment):
    """Answers in 2 s: within the kit's own timeout, far beyond the aggregator's.

    Only the latency case's ids are slow, so the other cases stay quick."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        if workflow_id.startswith("contract-latency"):
            await asyncio.sleep(2)
        return await super().answer(workflow_id, state, version)


class OversizedPayment(Payment):
    """A 'captured' record comes with 300 KiB of history: over the aggregator's cap."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        if state != "captured":
            return await super().answer(workflow_id, state, version)
        history = "x" * (300 * 1024)
        return web.json_response(payload(workflow_id, state, version=version, history=history))


class FrozenVersionPayment(Payment):
    """Every record is version 1, however often it changes."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        return web.json_response(payload(workflow_id, state, version=1))


class EpochDatePayment(Payment):
    """A 'captured' record's updated_at is a Unix time in a string."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        updated_at = "1767261600" if state == "captured" else GOOD["updated_at"]
        return web.json_response(
            payload(workflow_id, state, version=version, updated_at=updated_at)
        )


class LeapSecondPayment(Payment):
    """Not broken: a leap second is a valid RFC 3339 date-time."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        updated_at = "2016-12-31T23:59:60Z"
        return web.json_response(
            payload(workflow_id, state, version=version, updated_at=updated_at)
        )


class RedirectingPayment(Payment):
    """A 'captured' record has moved, and says so with a redirect."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        if state != "captured":
            return await super().answer(workflow_id, state, version)
        raise web.HTTPFound(f"/v2/payments/{workflow_id}")


class UndecodedColonPayment(Payment):
    """Looks ids up by the raw path segment, so 'a:b' (sent as 'a%3Ab') is never found."""

    def looked_up(self, request: web.Request) -> str:
        return request.raw_path.rsplit("/", 1)[1]


class ForgetfulHookPayment(Payment):
    """The state hook says yes and stores nothing."""

    async def set_state(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=204)


class OnceOnlyHookPayment(Payment):
    """The state hook refuses an id it has set up before, with a 409."""

    async def set_state(self, request: web.Request) -> web.StreamResponse:
        wanted = await request.json()
        if wanted["workflow_id"] in self.records:
            return web.json_response({"title": "exists"}, status=409)
        return await super().set_state(request)


class UnixTimeFrozenPayment(Payment):
    """Two defects at once: every updated_at is a Unix time, every version 1."""

    async def answer(self, workflow_id: str, state: str, version: int) -> web.StreamResponse:
        return web.json_response(payload(workflow_id, state, version=1, updated_at="1767261600"))


VARIANTS: dict[str, type[Payment]] = {
    "good": Payment,
    "slow": SlowPayment,
    "oversized": OversizedPayment,
    "frozen-version": FrozenVersionPayment,
    "epoch-date": EpochDatePayment,
    "leap-second": LeapSecondPayment,
    "redirecting": RedirectingPayment,
    "undecoded-colon": UndecodedColonPayment,
    "forgetful-hook": ForgetfulHookPayment,
    "once-only-hook": OnceOnlyHookPayment,
    "unix-time-frozen": UnixTimeFrozenPayment,
}


@asynccontextmanager
async def payment_variant(name: str) -> AsyncIterator[str]:
    """Serve one of ``VARIANTS``; yields its base URL (its hook is ``/_contract/state``)."""
    async with _serving(VARIANTS[name]()) as url:
        yield url


@asynccontextmanager
async def broken_payment() -> AsyncIterator[str]:
    async with _serving(BrokenPayment()) as url:
        yield url


@asynccontextmanager
async def _serving(provider: Payment | BrokenPayment) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/_contract/state", provider.set_state)
    app.router.add_get("/payments/{workflow_id}", provider.query)
    server = TestServer(app)
    await server.start_server(access_log=None)
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
