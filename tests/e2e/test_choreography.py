"""End to end on loopback: orders choreographed by the reference participants, read
back only through the gateway, with one participant going dark on the way."""

from __future__ import annotations

from collections import Counter

import aiohttp

from contracts import BatchResponse, WorkflowStatus
from participants import Choreography
from tests.gateway.harness import running_gateway
from tests.helpers import settings
from tests.participants.harness import choreography

TERMINAL = {"delivered", "compensated", "payment_failed"}


def gateway_settings(run: Choreography) -> object:
    fast = {"timeout_ms": 100, "protection": {"breaker_reset_ms": 100}}
    return settings(
        run.urls,
        deadline_ms=300,
        cache={"ttl_ms": 20, "terminal_ttl_ms": 20},
        participants={name: {"url": url, **fast} for name, url in run.urls.items()},
    )


async def read_all(client: aiohttp.ClientSession, ids: list[str]) -> list[WorkflowStatus]:
    async with client.post("/workflows/status:batch", json={"ids": ids}) as response:
        assert response.status == 200
        batch = BatchResponse.model_validate_json(await response.read())
    statuses = [entry.status for entry in batch.results]
    assert all(status is not None for status in statuses)  # every id is valid
    return [status for status in statuses if status is not None]


async def test_orders_reach_the_terminal_status_the_seed_decides() -> None:
    async with choreography(seed=23, min_delay=0.01, max_delay=0.03) as run:
        ids = [await run.place_order() for _ in range(30)]
        expected = {i: run.config.chance.expected_outcome(i) for i in ids}
        async with running_gateway(gateway_settings(run)) as gw:  # type: ignore[arg-type]
            final: dict[str, WorkflowStatus] = {}
            while len(final) < len(ids):
                for status in await read_all(gw.client, ids):
                    if status.status in TERMINAL and status.complete:
                        assert status.status == expected[status.workflow_id]
                        final[status.workflow_id] = status
            # compensation really refunds, and inventory releases what it held
            compensated = [i for i in ids if expected[i] == "compensated"]
            while True:
                statuses = await read_all(gw.client, compensated)
                if all(s.participants["inventory"].state == "released" for s in statuses):
                    break
    assert Counter(s.status for s in final.values()) == Counter(expected.values())
    assert set(Counter(expected.values())) == TERMINAL  # the seed exercises every path
    for workflow_id in compensated:
        assert final[workflow_id].participants["payment"].state == "refunded"
    for status in statuses:
        assert status.participants["payment"].state == "refunded"
        assert status.participants["inventory"].view == {
            **status.participants["inventory"].view,  # type: ignore[dict-item]
            "items": [],
        }


async def test_a_participant_going_dark_never_yields_a_wrong_terminal_status() -> None:
    async with (
        choreography(seed=31, min_delay=0.02, max_delay=0.05) as run,
        running_gateway(gateway_settings(run)) as gw,  # type: ignore[arg-type]
    ):
        ids = [await run.place_order() for _ in range(20)]
        expected = {i: run.config.chance.expected_outcome(i) for i in ids}

        def check(statuses: list[WorkflowStatus]) -> None:
            for status in statuses:
                if status.status in TERMINAL:
                    assert status.status == expected[status.workflow_id]

        known = 0
        while known < 3:  # let some parcels exist before shipping goes dark
            statuses = await read_all(gw.client, ids)
            check(statuses)
            known = sum(s.participants["shipping"].state is not None for s in statuses)
        shipping = run.services["shipping"]
        shipping.set_faults(shipping.faults.model_copy(update={"dark": True}))
        seen_while_dark: Counter[str] = Counter()
        for _ in range(10):
            statuses = await read_all(gw.client, ids)
            check(statuses)
            for status in statuses:
                part = status.participants["shipping"]
                seen_while_dark[str(part.source)] += 1
                assert part.outcome == "unavailable" or part.source == "cache"
                if part.source == "stale":
                    assert part.error is not None and part.error.kind in ("timeout", "circuit_open")
        shipping.set_faults(shipping.faults.model_copy(update={"dark": False}))
        final: dict[str, str] = {}
        while len(final) < len(ids):
            statuses = await read_all(gw.client, ids)
            check(statuses)
            final.update(
                {s.workflow_id: s.status for s in statuses if s.complete and s.status in TERMINAL}
            )
    assert seen_while_dark["stale"] > 0  # the last good part stands in, marked
    assert seen_while_dark["None"] > 0  # nothing to show for orders shipping never told us of
    assert final == expected
