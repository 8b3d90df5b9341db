"""The JetStream bus against a real nats-server: deduplication by event id,
acknowledgement only after the handler returns, redelivery after a crash, the
outbox published after a restart, and steps taken up after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from participants import (
    BusError,
    Chance,
    Event,
    EventType,
    JetStreamServer,
    NatsBus,
    PaymentService,
    Store,
    order_placed,
)
from participants._nats import STREAM
from participants._store import Later


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with JetStreamServer(tmp_path / "js") as running:
        yield running


def an_order(workflow_id: str = "order-1") -> Event:
    return order_placed(workflow_id, amount=100, currency="EUR", items=[])


async def test_an_event_published_twice_is_stored_once(server: JetStreamServer) -> None:
    event = an_order()
    async with NatsBus(server.url) as bus:
        await bus.publish(event)
        await bus.publish(event)  # a relay that crashed before marking it sent
        await bus.publish(an_order("order-2"))
        info = await bus.js.stream_info(STREAM)
    assert info.state.messages == 2


async def test_a_handler_that_fails_gets_the_event_again(server: JetStreamServer) -> None:
    calls: list[str] = []
    done = asyncio.Event()

    async def flaky(event: Event) -> None:
        calls.append(event.event_id)
        if len(calls) == 1:
            raise RuntimeError("the database is locked")
        done.set()

    async with NatsBus(server.url, consumer="flaky", ack_wait=30) as bus:
        bus.subscribe(EventType.ORDER_PLACED, flaky)
        await bus.start()
        event = an_order()
        await bus.publish(event)
        await asyncio.wait_for(done.wait(), 30)

        async def acknowledged() -> None:  # once it is, it stays so
            while (await bus.js.consumer_info(STREAM, "flaky")).num_ack_pending:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(acknowledged(), 30)
    assert calls == [event.event_id, event.event_id]
    assert bus.redelivered == 1 and bus.delivered == 1


async def test_an_event_whose_handler_died_is_delivered_to_the_next_run(
    server: JetStreamServer,
) -> None:
    started = asyncio.Event()

    async def never_returns(event: Event) -> None:
        started.set()
        await asyncio.Event().wait()  # the process dies before the handler returns

    async with NatsBus(server.url, consumer="payment", ack_wait=1.0) as bus:
        bus.subscribe(EventType.ORDER_PLACED, never_returns)
        await bus.start()
        event = an_order()
        await bus.publish(event)
        await asyncio.wait_for(started.wait(), 30)
    # Nothing was acknowledged: the next run of the same consumer gets it, after the
    # ack wait, by itself.
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def handler(event: Event) -> None:
        await got.put(event)

    async with NatsBus(server.url, consumer="payment", ack_wait=1.0) as again:
        again.subscribe(EventType.ORDER_PLACED, handler)
        await again.start()
        redelivered = await asyncio.wait_for(got.get(), 30)
    assert redelivered.event_id == event.event_id
    assert again.redelivered == 1


async def test_the_outbox_left_by_a_crash_is_published_at_the_next_start(
    server: JetStreamServer, tmp_path: Path
) -> None:
    db = tmp_path / "payment.sqlite3"
    captured = Event(type=EventType.PAYMENT_CAPTURED, workflow_id="order-1", data={"items": []})
    async with Store(db) as store:  # committed, never published: the process died
        await store.change(
            "order-1", "captured", emit=[(captured.event_id, captured.model_dump_json())]
        )
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def inventory(event: Event) -> None:
        await got.put(event)

    async with (
        NatsBus(server.url, consumer="inventory") as listener,
        Store(db) as store,
        NatsBus(server.url, consumer="payment") as bus,
    ):
        listener.subscribe(EventType.PAYMENT_CAPTURED, inventory)
        await listener.start()
        payment = PaymentService(store, bus, Chance())
        await payment.start()
        arrived = await asyncio.wait_for(got.get(), 30)
        await payment.aclose()
        assert await store.outbox_counts() == (1, 1)
    assert arrived.event_id == captured.event_id


async def test_steps_left_by_a_crash_are_taken_at_the_next_start(
    server: JetStreamServer, tmp_path: Path
) -> None:
    db = tmp_path / "payment.sqlite3"
    async with Store(db) as store:  # pending, with its authorization due: then it died
        await store.change("order-1", "pending", then=[Later("authorize", 0.0)])
    chance = Chance(min_delay=0.0, max_delay=0.0, payment_failure_rate=0.0)
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def inventory(event: Event) -> None:
        await got.put(event)

    async with (
        NatsBus(server.url, consumer="inventory") as listener,
        Store(db) as store,
        NatsBus(server.url, consumer="payment") as bus,
    ):
        listener.subscribe(EventType.PAYMENT_CAPTURED, inventory)
        await listener.start()
        payment = PaymentService(store, bus, chance)
        await payment.start()
        event = await asyncio.wait_for(got.get(), 30)
        await payment.aclose()
        record = await store.get("order-1")
        assert await store.steps() == []
    assert event.workflow_id == "order-1"
    assert record is not None and (record.state, record.version) == ("captured", 3)


async def test_a_step_is_taken_once_however_often_it_is_run(tmp_path: Path) -> None:
    async with Store(tmp_path / "p.sqlite3") as store:
        await store.change("order-1", "pending", then=[Later("authorize", 0.0)])
        first = await store.change("order-1", "authorized", step="authorize", when=("pending",))
        again = await store.change("order-1", "authorized", step="authorize", when=("pending",))
    assert first is not None and again is None


async def test_an_unreachable_server_is_a_bus_error(closed_port: int) -> None:
    with pytest.raises(BusError, match="cannot reach NATS"):
        async with NatsBus(f"nats://127.0.0.1:{closed_port}", connect_for=1.0):
            pass
