"""The JetStream bus against a real nats-server: deduplication by event id,
acknowledgement only after the handler returns, redelivery after a crash, the
outbox published after a restart, and steps taken up after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from participants import (
    BusError,
    Chance,
    Event,
    EventType,
    InUse,
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


@asynccontextmanager
async def payment_restarted(
    server: JetStreamServer, db: Path, chance: Chance
) -> AsyncIterator[asyncio.Queue[Event]]:
    """Payment started again on the database it left, with inventory listening: the
    PaymentCaptured events it publishes arrive in the queue."""
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
        try:
            yield got
        finally:
            await payment.aclose()


async def test_the_outbox_left_by_a_crash_is_published_at_the_next_start(
    server: JetStreamServer, tmp_path: Path
) -> None:
    db = tmp_path / "payment.sqlite3"
    captured = Event(type=EventType.PAYMENT_CAPTURED, workflow_id="order-1", data={"items": []})
    async with Store(db) as store:  # committed, never published: the process died
        await store.change(
            "order-1", "captured", emit=[(captured.event_id, captured.model_dump_json())]
        )
    async with payment_restarted(server, db, Chance()) as got:
        arrived = await asyncio.wait_for(got.get(), 30)
    async with Store(db) as store:
        assert await store.outbox_counts() == (1, 1)
    assert arrived.event_id == captured.event_id


async def test_steps_left_by_a_crash_are_taken_at_the_next_start(
    server: JetStreamServer, tmp_path: Path
) -> None:
    db = tmp_path / "payment.sqlite3"
    async with Store(db) as store:  # pending, with its authorization due: then it died
        await store.change("order-1", "pending", then=[Later("authorize", 0.0)])
    chance = Chance(min_delay=0.0, max_delay=0.0, payment_failure_rate=0.0)
    async with payment_restarted(server, db, chance) as got:
        event = await asyncio.wait_for(got.get(), 30)
    async with Store(db) as store:
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


class DiesAfterPublishing:
    """A bus whose process dies the moment the broker has taken the event, before
    the relay can mark it sent."""

    def __init__(self, bus: NatsBus) -> None:
        self.bus = bus

    def subscribe(self, event_type: EventType, handler: object) -> None:
        pass  # never started: it only publishes

    async def publish(self, event: Event) -> None:
        await self.bus.publish(event)
        raise asyncio.CancelledError  # SIGKILL, as far as the relay can tell


async def test_a_crash_between_publishing_and_marking_publishes_the_event_once(
    server: JetStreamServer, tmp_path: Path
) -> None:
    db = tmp_path / "payment.sqlite3"
    captured = Event(type=EventType.PAYMENT_CAPTURED, workflow_id="order-1", data={"items": []})
    async with NatsBus(server.url) as bus:
        async with Store(db) as store:
            await store.change(
                "order-1", "captured", emit=[(captured.event_id, captured.model_dump_json())]
            )
            dying = PaymentService(store, DiesAfterPublishing(bus), Chance())
            with pytest.raises(asyncio.CancelledError):
                await dying._publish_unsent()
            assert await store.outbox_counts() == (1, 0)  # published, not marked
        async with Store(db) as store:  # the next start publishes it again
            again = PaymentService(store, bus, Chance())
            await again.start()
            await again.aclose()  # publishes what is left before it stops
            assert await store.outbox_counts() == (1, 1)
        info = await bus.js.stream_info(STREAM)
    assert info.state.messages == 1  # the broker dropped the second by its id


async def test_an_event_handled_but_not_acknowledged_changes_nothing_the_second_time(
    server: JetStreamServer, tmp_path: Path
) -> None:
    db, event = tmp_path / "payment.sqlite3", an_order()
    chance = Chance(min_delay=3600, max_delay=3600)  # the next step never comes
    handled = asyncio.Event()
    async with Store(db) as store, NatsBus(server.url, consumer="payment", ack_wait=1.0) as bus:
        payment = PaymentService(store, bus, chance)

        async def dies_before_the_ack(event: Event) -> None:
            await payment.on_order_placed(event)  # committed
            handled.set()
            await asyncio.Event().wait()  # SIGKILL before the ack

        bus.subscribe(EventType.ORDER_PLACED, dies_before_the_ack)
        await bus.start()
        await bus.publish(event)
        await asyncio.wait_for(handled.wait(), 30)
    async with (
        Store(db) as store,
        NatsBus(server.url, consumer="payment", ack_wait=1.0) as bus,
    ):
        payment = PaymentService(store, bus, chance)
        await bus.start()

        async def acknowledged() -> None:  # once it is, it stays so
            while (await bus.js.consumer_info(STREAM, "payment")).num_ack_pending:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        await asyncio.wait_for(acknowledged(), 30)
        await payment.aclose()
        record = await store.get(event.workflow_id)
    assert bus.redelivered == 1
    assert record is not None and (record.state, record.version) == ("pending", 1)


async def test_an_event_no_handler_can_take_is_given_up_and_the_rest_go_on(
    server: JetStreamServer,
) -> None:
    taken: asyncio.Queue[str] = asyncio.Queue()

    async def handler(event: Event) -> None:
        if event.workflow_id == "poison":
            raise KeyError("amount")
        await taken.put(event.workflow_id)

    async with NatsBus(
        server.url, consumer="payment", redeliver_after=0.01, max_deliver=3, max_ack_pending=1
    ) as bus:
        bus.subscribe(EventType.ORDER_PLACED, handler)
        await bus.start()
        await bus.publish(an_order("poison"))
        await bus.publish(an_order("order-2"))  # behind it, with one message at a time
        assert await asyncio.wait_for(taken.get(), 30) == "order-2"

        async def settled() -> None:  # order-2 acknowledged, the poison given up: it lasts
            while (await bus.js.consumer_info(STREAM, "payment")).num_ack_pending:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 30)
    assert bus.redelivered == 2


async def test_a_stream_made_by_an_operator_is_used_if_it_holds_the_subjects(
    server: JetStreamServer,
) -> None:
    async with NatsBus(server.url) as bus:
        await bus.js.delete_stream(STREAM)
        await bus.js.add_stream(name=STREAM, subjects=["orders.>"], max_age=86_400)
    async with NatsBus(server.url) as bus:  # not refused: the retention is the operator's
        await bus.publish(an_order())
        await bus.js.delete_stream(STREAM)
        await bus.js.add_stream(name=STREAM, subjects=["other.>"])
    with pytest.raises(BusError, match=r"exists without the subjects 'orders\.>'"):
        async with NatsBus(server.url):
            pass


async def test_a_database_is_held_by_one_process(tmp_path: Path) -> None:
    async with Store(tmp_path / "payment.sqlite3"):
        with pytest.raises(InUse, match=r"payment\.sqlite3 is in use"):
            async with Store(tmp_path / "payment.sqlite3"):
                pass
    async with Store(tmp_path / "payment.sqlite3"):  # free again once closed
        pass


async def test_a_participant_stopping_publishes_what_its_outbox_holds(
    server: JetStreamServer, tmp_path: Path
) -> None:
    refunded = Event(type=EventType.PAYMENT_REFUNDED, workflow_id="order-1")
    async with Store(tmp_path / "payment.sqlite3") as store, NatsBus(server.url) as bus:
        await store.change(
            "order-1", "refunded", emit=[(refunded.event_id, refunded.model_dump_json())]
        )
        payment = PaymentService(store, bus, Chance())  # its relay never ran
        await payment.aclose()  # SIGTERM: it stops, and publishes first
        assert await store.outbox_counts() == (1, 1)
        info = await bus.js.stream_info(STREAM)
    assert info.state.messages == 1


async def test_a_mark_cancelled_after_its_write_leaves_the_event_unsent(tmp_path: Path) -> None:
    refunded = Event(type=EventType.PAYMENT_REFUNDED, workflow_id="order-1")
    async with Store(tmp_path / "payment.sqlite3") as store:
        await store.change(
            "order-1", "refunded", emit=[(refunded.event_id, refunded.model_dump_json())]
        )
        (outgoing,) = await store.unsent()

        async def stopped_between_the_write_and_the_commit() -> None:
            async with store._lock, store._transaction() as db:
                await db.execute("UPDATE outbox SET sent = 1 WHERE seq = ?", (outgoing.seq,))
                raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await stopped_between_the_write_and_the_commit()
        assert await store.outbox_counts() == (1, 0)  # rolled back, not left open
        assert [o.seq for o in await store.unsent()] == [outgoing.seq]
        # and the next transaction begins as any other
        assert await store.change("order-2", "pending") is not None
