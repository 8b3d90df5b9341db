"""Staged faults: the seed decides which orders lose an event or get a rogue one, and
the participants then end exactly where that leaves them."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

import pytest

from participants import Chance, Choreography, EventType, FaultKind, Staging
from participants.__main__ import add_arguments, config_from
from tests.participants.harness import choreography

IDS = [f"order-{n:04d}" for n in range(1, 5001)]

# Each participant's final state (None: no record) for each way an order can go.
PATHS: dict[str, tuple[str | None, str | None, str | None]] = {
    "payment_failed": ("failed", None, None),
    "delivered": ("captured", "reserved", "delivered"),
    "compensated": ("refunded", "released", None),
    "lost PaymentCaptured": ("captured", None, None),
    "lost StockReserved": ("captured", "reserved", None),
    "lost OutOfStock": ("captured", "out_of_stock", None),
    "rogue OutOfStock": ("refunded", "released", "delivered"),
}


def path(chance: Chance, workflow_id: str) -> str:
    lost, rogue = chance.lost_event(workflow_id), chance.rogue_event(workflow_id)
    if lost is not None:
        return f"lost {lost}"
    if rogue is not None:
        return f"rogue {rogue}"
    return chance.expected_outcome(workflow_id)


def test_no_fault_is_staged_unless_asked_for() -> None:
    chance = Chance(seed=3)
    assert not any(chance.lost_event(i) or chance.rogue_event(i) for i in IDS)
    assert {chance.expected_anomaly(i) for i in IDS} == {None}
    assert set(Counter(chance.expected_outcome(i) for i in IDS)) == {
        "delivered",
        "compensated",
        "payment_failed",
    }


def test_faults_follow_their_rates_and_fit_the_order_s_path() -> None:
    calm = Chance(seed=3)
    chance = Chance(seed=3, lost_event_rate=1 / 25, rogue_event_rate=1 / 50)
    lost = [i for i in IDS if chance.lost_event(i) is not None]
    rogue = [i for i in IDS if chance.rogue_event(i) is not None]
    assert not set(lost) & set(rogue)  # one fault per order at most
    paid = [i for i in IDS if not calm.payment_fails(i)]
    delivered = [i for i in IDS if calm.expected_outcome(i) == "delivered"]
    assert 0.03 < len(lost) / len(paid) < 0.05
    assert 0.013 < len(rogue) / len(delivered) < 0.027
    assert set(rogue) <= set(delivered) and set(lost) <= set(paid)
    for workflow_id in lost:
        event = chance.lost_event(workflow_id)
        if calm.expected_outcome(workflow_id) == "delivered":
            assert event in (EventType.PAYMENT_CAPTURED, EventType.STOCK_RESERVED)
        else:
            assert event in (EventType.PAYMENT_CAPTURED, EventType.OUT_OF_STOCK)
    assert Counter(chance.expected_anomaly(i) for i in [*lost, *rogue]).keys() == {
        "stuck_after_payment",
        "stuck_after_reservation",
        "refund_overdue",
        "refund_after_shipment",
    }
    # The orders the faults spare go exactly where they went before.
    spared = set(IDS) - set(lost) - set(rogue)
    assert all(chance.expected_outcome(i) == calm.expected_outcome(i) for i in spared)
    assert {chance.expected_outcome(i) for i in lost} == {"paid", "stock_reserved", "compensating"}
    assert {chance.expected_outcome(i) for i in rogue} == {"delivered"}


def test_the_staging_log_keeps_the_first_time() -> None:
    times = iter([1.0, 2.0])
    staging = Staging(clock=lambda: next(times))
    assert staging.record("order-1", FaultKind.LOST_EVENT, EventType.PAYMENT_CAPTURED)
    assert not staging.record("order-1", FaultKind.LOST_EVENT, EventType.PAYMENT_CAPTURED)
    assert staging.faults["order-1"].at == 1.0


async def states(run: Choreography, workflow_id: str) -> tuple[str | None, ...]:
    found = []
    for name in ("payment", "inventory", "shipping"):
        record = await run.services[name].store.get(workflow_id)
        found.append(None if record is None else record.state)
    return tuple(found)


async def test_participants_end_where_the_staged_faults_leave_them() -> None:
    async with choreography(
        seed=3, duplicate_rate=0.5, lost_event_rate=0.3, rogue_event_rate=0.4
    ) as run:
        chance = run.config.chance
        ids = [await run.place_order() for _ in range(30)]
        wanted = {i: PATHS[path(chance, i)] for i in ids}
        assert {path(chance, i) for i in ids} == set(PATHS)  # the seed takes every path

        async def settled() -> None:
            while any([await states(run, i) != wanted[i] for i in ids]):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 30)  # bounds a hang only
        await run.bus.drain()
        assert {i: await states(run, i) for i in ids} == wanted
    staged = {i: (f.kind, f.event) for i, f in run.staging.faults.items()}
    assert staged == {
        i: (FaultKind.LOST_EVENT, chance.lost_event(i))
        if chance.lost_event(i)
        else (FaultKind.ROGUE_EVENT, chance.rogue_event(i))
        for i in ids
        if chance.expected_anomaly(i) is not None
    }


def test_the_participants_command_stages_faults_when_asked() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    chance = config_from(parser.parse_args(["--lost-event-rate", "0.04"])).chance
    assert (chance.lost_event_rate, chance.rogue_event_rate) == (0.04, 0.0)
    assert config_from(parser.parse_args([])).chance.lost_event_rate == 0.0
    with pytest.raises(ValueError, match="add up to 1"):
        config_from(parser.parse_args(["--lost-event-rate", "0.6", "--rogue-event-rate", "0.6"]))


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"lost_event_rate": 0.8, "rogue_event_rate": 0.5}, "add up to 1 at most"),
        ({"rogue_event_rate": -0.1}, "the rogue-event rate must be between 0 and 1"),
        ({"out_of_stock_rate": 2.0}, "out_of_stock_rate must be between 0 and 1"),
        ({"min_delay": 3.0, "max_delay": 1.0}, "minimum delay must be between 0"),
    ],
)
def test_choices_that_cannot_be_honoured_are_refused(
    choices: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Chance(**choices)  # type: ignore[arg-type]
