"""The parts store's contract, kept by both backends: the in-process memory one and
Valkey, shared by processes (here: aggregators) pointing at the same server.

Freshness and the stale window are judged by each part's own fetched time on the
injected clock, so these tests move time by hand with either backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from aggregator import StatusAggregator, TransportFailure
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome, Source
from tests.helpers import NOT_FOUND, FakeNetwork, all_states, make_aggregator, ok

REFUSED = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "cannot connect", True)
STATES = {"payment": "captured", "inventory": "reserved", "shipping": "scheduled"}


@pytest.fixture(params=["memory", "valkey"])
def cache(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The cache settings of one backend (ttl 2 s, stale window 60 s: the defaults)."""
    if request.param == "memory":
        yield {}
    else:
        yield dict(request.getfixturevalue("valkey_cache"))


@asynccontextmanager
async def opened(
    network: FakeNetwork, clock: ManualClock, cache: dict[str, Any]
) -> AsyncIterator[StatusAggregator]:
    async with make_aggregator(network, clock, cache=cache) as aggregator:
        yield aggregator


async def test_a_part_is_served_from_the_store_until_its_time_to_live_ends(
    cache: dict[str, Any],
) -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", **STATES)
    async with opened(network, clock, cache) as aggregator:
        await aggregator.status("o-1")
        clock.advance(1.9)
        status = await aggregator.status("o-1")
        assert network.calls("payment") == 1
        assert status.participants["payment"].source is Source.CACHE
        clock.advance(0.2)  # 2.1 s after the fetch
        status = await aggregator.status("o-1")
    assert network.calls("payment") == 2
    assert status.participants["payment"].source is Source.LIVE


async def test_the_last_good_part_stands_in_within_the_stale_window(
    cache: dict[str, Any],
) -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", **STATES)
    async with opened(network, clock, cache) as aggregator:
        await aggregator.status("o-1")
        network.set("payment", REFUSED)
        clock.advance(30)
        part = (await aggregator.status("o-1")).participants["payment"]
        assert (part.outcome, part.source, part.state) == (
            Outcome.UNAVAILABLE,
            Source.STALE,
            "captured",
        )
        assert part.age_ms == 30_000
        clock.advance(31)  # 61 s: past the window
        part = (await aggregator.status("o-1")).participants["payment"]
    assert (part.outcome, part.source, part.state) == (Outcome.UNAVAILABLE, None, None)


async def test_a_lower_version_never_replaces_a_higher_one(cache: dict[str, Any]) -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", **STATES)
    network.set("payment", ok("payment", "o-1", "captured", version=3))
    async with opened(network, clock, cache) as aggregator:
        await aggregator.status("o-1")
        network.set("payment", ok("payment", "o-1", "authorized", version=2))
        clock.advance(3)
        part = (await aggregator.status("o-1")).participants["payment"]
        assert (part.source, part.state, part.version) == (Source.STALE, "captured", 3)
        assert part.error is not None and part.error.kind is ErrorKind.VERSION_REGRESSION
        network.set("payment", ok("payment", "o-1", "refunded", version=4))
        clock.advance(3)
        part = (await aggregator.status("o-1")).participants["payment"]
    assert (part.source, part.state, part.version) == (Source.LIVE, "refunded", 4)


async def test_scopes_never_share_a_part(cache: dict[str, Any]) -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", **STATES)
    async with opened(network, clock, cache) as aggregator:
        await aggregator.status("o-1", scope="tenant-a")
        network.set("payment", NOT_FOUND)
        status = await aggregator.status("o-1", scope="tenant-b")
        assert status.participants["payment"].outcome is Outcome.NOT_FOUND
        assert network.calls("payment") == 2
        again = await aggregator.status("o-1", scope="tenant-a")
    assert again.participants["payment"].state == "captured"
    assert network.calls("payment") == 2


# Valkey only: what sharing adds.


async def test_another_process_serves_a_part_fetched_by_one(
    valkey_cache: dict[str, Any],
) -> None:
    first, second, clock = FakeNetwork(), FakeNetwork(), ManualClock()
    all_states(first, "o-1", **STATES)
    async with (
        opened(first, clock, valkey_cache) as one,
        opened(second, clock, valkey_cache) as other,
    ):
        await one.status("o-1")
        clock.advance(1)
        status = await other.status("o-1")
        assert second.requests == []  # not one call of its own
        part = status.participants["payment"]
        assert (part.source, part.state, part.age_ms) == (Source.CACHE, "captured", 1_000)
        assert other.pipeline("payment").stats.shared_hits == 1


async def test_a_process_started_after_the_last_good_call_still_shows_it(
    valkey_cache: dict[str, Any],
) -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", **STATES)
    async with opened(network, clock, valkey_cache) as one:
        await one.status("o-1")
    network.set("payment", REFUSED)
    clock.advance(20)
    async with opened(network, clock, valkey_cache) as later:
        part = (await later.status("o-1")).participants["payment"]
    assert (part.outcome, part.source, part.state, part.age_ms) == (
        Outcome.UNAVAILABLE,
        Source.STALE,
        "captured",
        20_000,
    )


async def test_a_lagging_process_cannot_regress_what_another_kept(
    valkey_cache: dict[str, Any],
) -> None:
    ahead, behind, clock = FakeNetwork(), FakeNetwork(), ManualClock()
    all_states(ahead, "o-1", **STATES)
    ahead.set("payment", ok("payment", "o-1", "captured", version=5))
    all_states(behind, "o-1", **STATES)
    behind.set("payment", ok("payment", "o-1", "authorized", version=3))
    async with (
        opened(ahead, clock, valkey_cache) as one,
        opened(behind, clock, valkey_cache) as other,
    ):
        await one.status("o-1")
        clock.advance(3)  # past the time to live: the lagging one calls
        part = (await other.status("o-1")).participants["payment"]
        assert (part.source, part.state, part.version) == (Source.STALE, "captured", 5)
        assert part.error is not None and part.error.kind is ErrorKind.VERSION_REGRESSION
        assert behind.calls("payment") == 1


async def test_a_process_waits_for_the_call_another_holds_the_lease_for(
    valkey_cache: dict[str, Any],
) -> None:
    release = asyncio.Event()

    async def held(request: Any) -> Any:
        await release.wait()
        return ok("payment", "o-1", "captured")

    first, second, clock = FakeNetwork(), FakeNetwork(), ManualClock()
    all_states(first, "o-1", **STATES)
    first.set("payment", held)
    all_states(second, "o-1", **STATES)
    async with (
        opened(first, clock, valkey_cache) as one,
        opened(second, clock, valkey_cache) as other,
    ):
        calling = asyncio.create_task(one.status("o-1"))
        await first.received(3)  # its calls are out, under their leases
        waiting = asyncio.create_task(other.status("o-1"))
        for _ in range(20_000):  # until it has found the lease taken (it stays so)
            if other.pipeline("payment").stats.lease_waits:
                break
            await asyncio.sleep(0.001)
        assert other.pipeline("payment").stats.lease_waits == 1
        release.set()
        await calling
        part = (await waiting).participants["payment"]
    assert (part.source, part.state) == (Source.CACHE, "captured")
    assert second.calls("payment") == 0


async def test_an_unreachable_store_leaves_each_process_its_own_parts(
    closed_port: int,
) -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", **STATES)
    cache = {"backend": f"valkey://127.0.0.1:{closed_port}/0"}
    async with opened(network, clock, cache) as aggregator:
        status = await aggregator.status("o-1")
        assert status.complete
        assert aggregator.shared is not None and aggregator.shared.problem is not None
        clock.advance(1.9)  # held its whole time to live, as the memory backend does
        again = await aggregator.status("o-1")
    assert again.participants["payment"].source is Source.CACHE
    assert network.calls("payment") == 1
