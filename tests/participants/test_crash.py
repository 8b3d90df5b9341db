"""Crash safety on a real broker: each participant process is killed with SIGKILL
once while 200 orders flow, and started again; nothing is lost, nothing is done
twice, and the broker's and the outboxes' counts add up."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from aggregator import StatusAggregator
from participants import Chance, ChoreographyConfig, ProcessChoreography
from participants._nats import STREAM
from tests.helpers import settings

ORDERS = 200
FREE = {"payment": 0, "inventory": 0, "shipping": 0}
# Each record's version on each path: one per change, none twice.
VERSIONS = {
    "delivered": {"payment": 3, "inventory": 2, "shipping": 4},
    "payment_failed": {"payment": 3},
    "compensated": {"payment": 4, "inventory": 3},
    "paid": {"payment": 3},  # PaymentCaptured lost: inventory never opens a record
    "stock_reserved": {"payment": 3, "inventory": 2},  # StockReserved lost
    "compensating": {"payment": 3, "inventory": 2},  # OutOfStock lost: no refund
}
# The events each path makes each participant emit, exactly once.
EMITS = {
    "delivered": {"PaymentCaptured", "StockReserved", "ShipmentScheduled", "ShipmentDelivered"},
    "payment_failed": {"PaymentFailed"},
    "compensated": {"PaymentCaptured", "OutOfStock", "PaymentRefunded", "StockReleased"},
    "paid": {"PaymentCaptured"},
    "stock_reserved": {"PaymentCaptured", "StockReserved"},
    "compensating": {"PaymentCaptured", "OutOfStock"},
}


def read(db: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(query).fetchall()


async def outcomes(agg: StatusAggregator, ids: list[str]) -> dict[str, str]:
    answers = await agg.status_many(ids)
    return {status.workflow_id: status.status for status in answers}


async def test_each_participant_killed_once_loses_nothing_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    chance = Chance(seed=21, min_delay=0.02, max_delay=0.2, lost_event_rate=0.05)
    config = ChoreographyConfig(
        ports=dict(FREE), chance=chance, db_dir=tmp_path, bus="nats", ack_wait=1.0
    )
    rng = random.Random(5)
    # From which order on each participant may be killed, and how many more orders
    # are placed before it is started again (events for it wait in the stream).
    kill_from = {name: rng.randrange(20, ORDERS - 100) for name in FREE}
    down_for = {name: rng.randrange(1, 30) for name in FREE}
    killed_at: dict[str, int] = {}  # order number
    interrupted: dict[str, int] = {}  # steps scheduled and not taken, when it died

    def steps_under_way(name: str) -> int:
        db = tmp_path / f"{name}.sqlite3"
        return int(read(db, "SELECT COUNT(*) FROM steps")[0][0]) if db.exists() else 0

    async with ProcessChoreography(config) as run:
        ids: list[str] = []
        number, rounds = 0, 0
        while (number < ORDERS or len(killed_at) < len(FREE)) and rounds < ORDERS + 2000:
            rounds += 1
            if number < ORDERS:
                number += 1
                ids.append(await run.place_order())
            for name in FREE:
                if name not in killed_at and number >= kill_from[name]:
                    # Killed at a moment it has work under way (steps last tens of
                    # milliseconds while orders keep coming), as a crash would find it.
                    if (under_way := steps_under_way(name)) > 0:
                        await run.kill(name)
                        killed_at[name], interrupted[name] = number, under_way
                elif name in killed_at and number >= min(ORDERS, killed_at[name] + down_for[name]):
                    await run.start(name)  # a running one is left as it is
            await asyncio.sleep(0.005)  # orders arrive over time, as they would
        for name in FREE:
            await run.start(name)
        assert set(killed_at) == set(FREE), f"never found at work: {set(FREE) - set(killed_at)}"
        assert all(n > 0 for n in interrupted.values()), interrupted
        wanted = {i: chance.expected_outcome(i) for i in ids}
        assert set(wanted.values()) >= {"delivered", "payment_failed", "compensated"}
        body = {"cache": {"ttl_ms": 1, "terminal_ttl_ms": 1}, "deadline_ms": 5000}
        async with StatusAggregator(settings(run.urls, **body)) as agg:

            async def settled() -> dict[str, str]:
                while (found := await outcomes(agg, ids)) != wanted:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)  # polling the final state, which lasts
                return found

            try:
                await asyncio.wait_for(settled(), 120)  # bounds a hang only
            except TimeoutError:
                found = await outcomes(agg, ids)
                wrong = {i: (found[i], wanted[i]) for i in ids if found[i] != wanted[i]}
                raise AssertionError(
                    f"{len(wrong)} orders not where the seed leads: {wrong}"
                ) from None
        assert {name: child.starts for name, child in run.children.items()} == dict.fromkeys(
            FREE, 2
        )
        for name in FREE:
            await run.stop(name)  # as an operator would: each publishes what it has
        assert run.bus is not None
        stream = await run.bus.js.stream_info(STREAM)
        consumers = await run.bus.js.consumers_info(STREAM)
        assert {c.name for c in consumers} >= set(FREE)
    # The children are stopped: their databases are read as they were left.
    emitted: Counter[str] = Counter()
    for name in FREE:
        db = tmp_path / f"{name}.sqlite3"
        versions = dict(read(db, "SELECT workflow_id, version FROM records"))
        assert versions == {
            i: VERSIONS[wanted[i]][name] for i in ids if name in VERSIONS[wanted[i]]
        }, name
        rows = read(
            db,
            "SELECT json_extract(event, '$.workflow_id'), json_extract(event, '$.type'), sent"
            " FROM outbox",
        )
        assert all(sent == 1 for *_, sent in rows), f"{name} left events unsent"
        pairs = Counter((str(w), str(t)) for w, t, _ in rows)
        assert max(pairs.values()) == 1, f"{name} emitted an event twice"
        emitted.update(str(t) for _, t, _ in rows)
        assert read(db, "SELECT COUNT(*) FROM steps") == [(0,)], f"{name} left steps untaken"
    assert sum(emitted.values()) == sum(len(EMITS[w]) for w in wanted.values())
    assert emitted == Counter(t for w in wanted.values() for t in EMITS[w])
    # Every event the outboxes emitted is in the stream once, beside the orders placed.
    assert stream.state.messages == ORDERS + sum(emitted.values())
