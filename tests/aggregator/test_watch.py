"""Watching a workflow: one shared poller per workflow and scope, on a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from aggregator import (
    ORDER_FULFILMENT,
    Answer,
    Change,
    InvalidWorkflowId,
    NotOpen,
    OutboundRequest,
    StatusAggregator,
    TooManyWatchers,
    TransportFailure,
    TransportResponse,
    WatchFailed,
)
from aggregator._watch import Watches
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome, Source
from tests.helpers import JSON, FakeNetwork, all_states, body, make_aggregator, ok

REFUSED = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "cannot connect", False)
TTL = 2.0


def watched(network: FakeNetwork, clock: ManualClock, **overrides: Any) -> StatusAggregator:
    # No retries: a refused call is one call, and no real sleep runs between attempts.
    participants = {
        name: {"url": f"http://{name}.test/{name}/{{workflow_id}}", "protection": {"retry": False}}
        for name in ("payment", "inventory", "shipping")
    }
    return make_aggregator(
        network, clock, participants=participants, cache={"ttl_ms": 2000}, **overrides
    )


async def next_change(changes: AsyncIterator[Change]) -> Change:
    """The next change, failing the test (not hanging it) if none ever comes."""
    return await asyncio.wait_for(anext(changes), timeout=30)


async def test_the_first_change_is_the_current_status() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured", inventory="reserved")
    async with watched(network, clock) as agg, aclosing(agg.changes("o-1")) as changes:
        first = await next_change(changes)
    assert first.answer.verdict.status == "stock_reserved"
    assert not first.final
    assert first.validator == first.answer.rendering.fingerprint


async def test_a_poll_that_changes_only_ages_tells_nobody() -> None:
    """After a poll finding the same parts (older), the next change a watcher gets is
    the participant's real change, one time to live later."""
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured", inventory="reserved")
    async with watched(network, clock) as agg, aclosing(agg.changes("o-1")) as changes:
        first = await next_change(changes)
        await clock.sleeping()
        clock.advance(TTL)  # the parts expire: asked again, the same answers
        await clock.sleeping()
        assert network.calls("payment") == 2
        network.set("shipping", ok("shipping", "o-1", "scheduled"))
        clock.advance(TTL)
        second = await next_change(changes)
    assert network.calls("payment") == 3
    assert (first.answer.verdict.status, second.answer.verdict.status) == (
        "stock_reserved",
        "shipment_scheduled",
    )
    assert second.answer.now == first.answer.now + 2 * TTL


async def test_cached_parts_are_not_asked_for_early() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    async with watched(network, clock) as agg, aclosing(agg.changes("o-1")) as changes:
        await next_change(changes)
        await clock.sleeping()
        clock.advance(TTL - 0.01)
        await clock.sleeping()  # still the first sleep: the clock has not reached its end
        assert network.calls("payment") == 1
        clock.advance(0.01)
        await clock.sleeping()
        assert network.calls("payment") == 2


async def test_a_part_that_expires_while_another_is_fetched_is_asked_for_next() -> None:
    """The poller wakes at the payment's expiry; while the payment is fetched again,
    the inventory's part (cached a fraction of a millisecond later) expires too.
    It is asked for a moment later, not a whole time to live late."""
    network, clock = FakeNetwork(), ManualClock()
    start = clock.now
    calls = {"payment": 0, "inventory": 0}

    async def payment(_: OutboundRequest) -> TransportResponse:
        calls["payment"] += 1
        if calls["payment"] == 2:
            clock.advance(0.0005)  # a slower call: the inventory's part expires meanwhile
        return ok("payment", "o-1", "captured")

    async def inventory(_: OutboundRequest) -> TransportResponse:
        calls["inventory"] += 1
        if calls["inventory"] == 1:
            clock.advance(0.0002)  # fetched just after the payment
        return ok("inventory", "o-1", "reserved")

    network.set("payment", payment)
    network.set("inventory", inventory)
    async with watched(network, clock) as agg, aclosing(agg.changes("o-1")) as changes:
        await next_change(changes)
        await clock.sleeping()
        clock.advance(start + TTL - clock.now)  # the payment's expiry
        await clock.sleeping()
        assert calls == {"payment": 2, "inventory": 1}
        clock.advance(0.001)
        await clock.sleeping()
    assert calls == {"payment": 2, "inventory": 2}


async def test_a_part_its_participant_says_not_to_keep_is_asked_at_each_poll_only() -> None:
    """A no-cache part expires as it arrives: the poller asks for it when the other
    parts expire (a time to live), not every millisecond."""
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", inventory="reserved", shipping="scheduled")
    uncached = {**JSON, "cache-control": "no-cache"}
    network.set("payment", TransportResponse(200, uncached, body("payment", "o-1", "captured")))
    async with watched(network, clock) as agg, aclosing(agg.changes("o-1")) as changes:
        await next_change(changes)
        await clock.sleeping()
        clock.advance(0.01)
        await clock.sleeping()
        assert network.calls("payment") == 1
        clock.advance(TTL - 0.01)
        await clock.sleeping()
    assert [network.calls(name) for name in ("payment", "inventory", "shipping")] == [2, 2, 2]


async def test_watchers_of_one_workflow_share_one_poller() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    async with watched(network, clock) as agg:
        iterators = [agg.changes("o-1") for _ in range(50)]
        firsts = await asyncio.gather(*map(next_change, iterators))
        assert agg.watches.watchers == 50 and agg.watches.workflows == 1
        for _ in range(3):
            await clock.sleeping()
            clock.advance(TTL)
        await clock.sleeping()
        for iterator in iterators:
            await iterator.aclose()
    assert {change.validator for change in firsts} == {firsts[0].validator}
    assert [network.calls(name) for name in ("payment", "inventory", "shipping")] == [4, 4, 4]


async def test_scopes_are_watched_apart() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    async with (
        watched(network, clock) as agg,
        aclosing(agg.changes("o-1", scope="a")) as a,
        aclosing(agg.changes("o-1", scope="b")) as b,
    ):
        change_a, change_b = await next_change(a), await next_change(b)
        assert agg.watches.workflows == 2
    assert change_a.validator != change_b.validator  # a validator covers whom it is for
    assert network.calls("payment") == 2


async def test_polling_stops_when_the_last_watcher_leaves() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    async with watched(network, clock) as agg:
        one, two = agg.changes("o-1"), agg.changes("o-1")
        await next_change(one)
        await next_change(two)
        await one.aclose()
        assert agg.watches.workflows == 1
        await two.aclose()
        assert (agg.watches.workflows, agg.watches.watchers) == (0, 0)
        clock.advance(10 * TTL)
        # A new watcher starts a new poller: one more call, not the ten missed.
        async with aclosing(agg.changes("o-1")) as three:
            await next_change(three)
    assert network.calls("payment") == 2


async def test_the_iterator_ends_after_the_final_status() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured", inventory="reserved", shipping="in_transit")
    async with watched(network, clock) as agg:
        seen: list[Change] = []

        async def watch() -> None:
            async for change in agg.changes("o-1"):
                seen.append(change)

        watcher = asyncio.create_task(watch())
        await clock.sleeping()
        network.set("shipping", ok("shipping", "o-1", "delivered"))
        clock.advance(TTL)
        await asyncio.wait_for(watcher, timeout=30)
        assert agg.watches.workflows == 0
        clock.advance(100 * TTL)
    assert [(c.answer.verdict.status, c.final) for c in seen] == [
        ("in_transit", False),
        ("delivered", True),
    ]
    assert network.calls("shipping") == 2


async def test_a_part_turning_stale_and_coming_back_is_a_change() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured", inventory="reserved")
    async with watched(network, clock) as agg, aclosing(agg.changes("o-1")) as changes:
        await next_change(changes)
        await clock.sleeping()
        network.set("inventory", REFUSED)
        clock.advance(TTL)
        dark = await next_change(changes)
        await clock.sleeping()
        network.set("inventory", ok("inventory", "o-1", "reserved"))
        clock.advance(TTL)  # nothing is fresh: asked again one time to live later
        back = await next_change(changes)
    assert dark.answer.parts["inventory"].source is Source.STALE
    assert dark.answer.verdict.status == "stock_reserved"
    assert back.answer.parts["inventory"].source is Source.LIVE


async def test_limits_refuse_a_watcher_before_it_waits() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    limits = {"max_watchers": 3, "max_watchers_per_workflow": 2}
    async with watched(network, clock, watch=limits) as agg:
        held = [agg.changes("o-1"), agg.changes("o-1")]
        for iterator in held:
            await next_change(iterator)
        with pytest.raises(TooManyWatchers, match="2 watchers of one workflow at most"):
            await anext(agg.changes("o-1"))
        held.append(agg.changes("o-2"))
        await next_change(held[-1])
        with pytest.raises(TooManyWatchers, match="3 watchers at once at most"):
            await anext(agg.changes("o-3"))
        assert agg.watches.watchers == 3  # the refused ones hold nothing
        await held[0].aclose()
        async with aclosing(agg.changes("o-1")) as again:
            await next_change(again)
        for iterator in held[1:]:
            await iterator.aclose()


async def test_closing_the_aggregator_ends_every_watch() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    seen: list[str] = []
    agg = watched(network, clock)
    async with agg:

        async def watch() -> None:
            async for status in agg.watch("o-1"):
                seen.append(status.status)

        watcher = asyncio.create_task(watch())
        await clock.sleeping()
    await asyncio.wait_for(watcher, timeout=30)
    assert seen == ["paid"]


async def test_the_library_iterator_yields_statuses() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="failed")
    async with watched(network, clock) as agg:
        statuses = [status async for status in agg.watch("o-1")]
    assert [s.status for s in statuses] == ["payment_failed"]  # final at once: it ends


async def test_a_bad_id_is_refused_before_any_watch() -> None:
    async with watched(FakeNetwork(), ManualClock()) as agg:
        with pytest.raises(InvalidWorkflowId):
            agg.changes("bad id")
        assert agg.watches.workflows == 0


async def test_watching_outside_async_with_raises_not_open() -> None:
    agg = watched(FakeNetwork(), ManualClock())
    with pytest.raises(NotOpen):
        agg.changes("o-1")


async def test_closing_ends_a_watch_whose_poller_has_not_run_yet() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    agg = watched(network, clock)
    async with agg:

        async def watch() -> list[str]:
            return [status.status async for status in agg.watch("o-1")]

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)  # the watcher has joined; its poller has not run
        assert agg.watches.workflows == 1
    assert await asyncio.wait_for(watcher, timeout=30) == []
    assert network.calls("payment") == 0


async def test_leaving_a_watch_early_stops_its_poller_at_once() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    async with watched(network, clock) as agg:
        async with aclosing(agg.watch("o-1")) as statuses:
            async for _ in statuses:
                break
        assert (agg.watches.workflows, agg.watches.watchers) == (0, 0)


async def test_a_failed_poller_raises_a_watch_failed_in_each_watcher() -> None:
    async def failing(key: object, headers: object) -> Answer:
        raise RuntimeError("a fault of ours")

    clock = ManualClock()
    watches = Watches(
        failing,
        ORDER_FULFILMENT,
        ttl=TTL,
        clock=clock,
        sleep=clock.sleep,
        max_total=10,
        max_per_workflow=10,
    )
    raised = []
    for _ in range(3):
        with pytest.raises(WatchFailed) as caught:
            await anext(watches.changes(("", "o-1"), None))
        raised.append(caught.value)
    assert len({id(exc) for exc in raised}) == 3  # each its own, tracebacks not stacked
    assert all(isinstance(exc.__cause__, RuntimeError) for exc in raised)


async def test_no_watch_starts_while_the_aggregator_closes() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    agg = watched(network, clock)
    async with agg:
        agg.watches.close()  # as the gateway does on shutdown, before closing
        with pytest.raises(NotOpen, match="closing"):
            await anext(agg.changes("o-1"))
    async with agg, aclosing(agg.changes("o-1")) as changes:  # opened again: they start
        assert (await next_change(changes)).answer.verdict.status == "paid"
