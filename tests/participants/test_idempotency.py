"""At-least-once delivery: an event handled twice changes nothing the second time."""

from __future__ import annotations

import asyncio

from participants import Choreography, EventType, order_placed
from tests.participants.harness import choreography


async def final_records(
    run: Choreography, ids: list[str]
) -> dict[tuple[str, str], tuple[str, int]]:
    """Wait until every order is final in its participants' databases; return their records."""
    done = {"payment": {"failed", "refunded"}, "shipping": {"delivered"}}

    async def settled(workflow_id: str) -> bool:
        payment = await run.services["payment"].store.get(workflow_id)
        shipping = await run.services["shipping"].store.get(workflow_id)
        inventory = await run.services["inventory"].store.get(workflow_id)
        if payment is not None and payment.state == "refunded":
            return inventory is not None and inventory.state == "released"
        return (payment is not None and payment.state in done["payment"]) or (
            shipping is not None and shipping.state in done["shipping"]
        )

    while not all([await settled(i) for i in ids]):  # noqa: ASYNC110 - polling the databases
        await asyncio.sleep(0.005)
    records = {}
    for name, service in run.services.items():
        for workflow_id in ids:
            record = await service.store.get(workflow_id)
            if record is not None:
                records[(name, workflow_id)] = (record.state, record.version)
    return records


async def test_duplicated_deliveries_change_nothing() -> None:
    async with choreography(seed=5, duplicate_rate=0.0) as once:
        ids = [await once.place_order() for _ in range(20)]
        expected = await asyncio.wait_for(final_records(once, ids), 30)
    async with choreography(seed=5, duplicate_rate=1.0) as twice:
        assert [await twice.place_order() for _ in range(20)] == ids
        doubled = await asyncio.wait_for(final_records(twice, ids), 30)
        assert twice.bus.duplicated > 0
        assert twice.bus.delivered == 2 * once.bus.delivered
    assert doubled == expected


async def test_the_same_event_published_again_is_ignored() -> None:
    async with choreography(min_delay=3600, max_delay=3600) as run:  # steps never fire
        event = order_placed("order-7", amount=100, currency="EUR", items=[])
        for _ in range(3):
            await run.bus.publish(event)
        await run.bus.drain()
        record = await run.services["payment"].store.get("order-7")
    assert run.bus.delivered == 3
    assert record is not None and (record.state, record.version) == ("pending", 1)
    assert event.type is EventType.ORDER_PLACED
