"""What a participant's Cache-Control does to our cache: parsed, then honoured."""

from __future__ import annotations

import pytest

from aggregator import StatusAggregator, TransportResponse
from aggregator._cache_control import Directives, of_response, parse
from aggregator.testing import ManualClock
from contracts import Source
from tests.helpers import JSON, FakeNetwork, all_states, body, make_aggregator

REFUSED_503 = TransportResponse(503, {}, b"")


@pytest.mark.parametrize(
    ("header", "age", "expected"),
    [
        (None, None, Directives()),
        ("", None, Directives()),
        ("no-store", None, Directives(no_store=True)),
        ("No-Store", None, Directives(no_store=True)),
        ("PRIVATE, no-store", None, Directives(no_store=True, private=True)),
        ('private="Set-Cookie"', None, Directives(private=True)),
        ("public, max-age=5", None, Directives(max_age=5.0)),
        ("max-age=5, MAX-AGE=3", None, Directives(max_age=3.0)),
        ('max-age="4"', None, Directives(max_age=4.0)),
        ("max-age=soon", None, Directives(max_age=0.0)),
        ("max-age=-1", None, Directives(max_age=0.0)),
        ("max-age=10", "4", Directives(max_age=6.0)),
        ("max-age=10", "40", Directives(max_age=0.0)),
        ("max-age=10", "nonsense", Directives(max_age=10.0)),
        ("s-maxage=0, proxy-revalidate", None, Directives()),
        ("no-cache, must-revalidate", None, Directives(no_cache=True, must_revalidate=True)),
        ("max-age=5, no-cache", None, Directives(no_cache=True, max_age=5.0)),
        ("unknown-directive=1, , ,", None, Directives()),
    ],
)
def test_directives_are_parsed_as_a_list_without_regard_to_case(
    header: str | None, age: str | None, expected: Directives
) -> None:
    assert parse(header, age) == expected


def test_storable_only_without_no_store_private_or_no_cache() -> None:
    assert Directives(max_age=0.0, must_revalidate=True).storable
    for said in ("no-store", "private", "no-cache"):
        assert not parse(said).storable


def answering(cache_control: str | None, state: str = "captured") -> TransportResponse:
    headers = dict(JSON)
    if cache_control is not None:
        headers["cache-control"] = cache_control
    return TransportResponse(200, headers, body("payment", "o-1", state))


def payment_saying(cache_control: str | None) -> FakeNetwork:
    """Inventory and shipping answer plainly; payment with ``cache_control``."""
    network = FakeNetwork()
    all_states(network, "o-1", inventory="reserved", shipping="scheduled")
    network.set("payment", answering(cache_control))
    return network


def aggregator(
    network: FakeNetwork, clock: ManualClock, *, ttl_ms: int = 2_000
) -> StatusAggregator:
    cache = {"ttl_ms": ttl_ms, "terminal_ttl_ms": 30_000, "stale_ms": 60_000}
    return make_aggregator(network, clock, seed=1, cache=cache)


@pytest.mark.parametrize(
    "cache_control", ["no-store", "private", "no-cache", "NO-CACHE", "max-age=0", "private=x"]
)
async def test_a_part_that_may_not_be_reused_is_asked_for_again(cache_control: str) -> None:
    network = payment_saying(cache_control)
    clock = ManualClock()
    async with aggregator(network, clock) as agg:
        first = await agg.status("o-1")
        second = await agg.status("o-1")
    assert first.participants["payment"].source is Source.LIVE
    assert second.participants["payment"].source is Source.LIVE
    assert second.participants["inventory"].source is Source.CACHE
    assert network.calls("payment") == 2 and network.calls("inventory") == 1


async def test_s_maxage_is_not_ours_to_honour() -> None:
    network = payment_saying("s-maxage=0, max-age=60")
    async with aggregator(network, ManualClock()) as agg:
        await agg.status("o-1")
        again = await agg.status("o-1")
    assert again.participants["payment"].source is Source.CACHE
    assert network.calls("payment") == 1


async def test_a_shorter_max_age_shortens_the_part_s_time_to_live() -> None:
    network = payment_saying("max-age=1")
    clock = ManualClock()
    async with aggregator(network, clock, ttl_ms=5_000) as agg:
        await agg.status("o-1")
        clock.advance(0.9)
        within = await agg.status("o-1")
        clock.advance(0.2)  # 1.1 s: past the participant's max-age, within our 5 s
        past = await agg.status("o-1")
    assert within.participants["payment"].source is Source.CACHE
    assert past.participants["payment"].source is Source.LIVE
    assert past.participants["inventory"].source is Source.CACHE
    assert network.calls("payment") == 2 and network.calls("inventory") == 1


async def test_a_longer_max_age_does_not_lengthen_ours() -> None:
    network = payment_saying("max-age=3600")
    clock = ManualClock()
    async with aggregator(network, clock, ttl_ms=2_000) as agg:
        await agg.status("o-1")
        clock.advance(2.1)
        later = await agg.status("o-1")
    assert later.participants["payment"].source is Source.LIVE


@pytest.mark.parametrize(
    ("cache_control", "stands_in"),
    [("max-age=0", True), (None, True), ("max-age=0, must-revalidate", False)],
)
async def test_a_part_stands_in_for_a_failed_call_unless_it_must_be_revalidated(
    cache_control: str | None, stands_in: bool
) -> None:
    network = payment_saying(cache_control)
    clock = ManualClock()
    async with aggregator(network, clock) as agg:
        await agg.status("o-1")
        clock.advance(3)
        network.set("payment", REFUSED_503)
        during = await agg.status("o-1")
    part = during.participants["payment"]
    assert part.source is (Source.STALE if stands_in else None)
    assert (part.view is not None) is stands_in


NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DATE = "Thu, 01 Jan 2026 00:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"expires": "Thu, 01 Jan 2026 00:00:05 GMT", "date": DATE}, Directives(max_age=5.0)),
        ({"expires": "Thu, 01 Jan 2026 00:00:05 GMT"}, Directives(max_age=5.0)),  # Date: now
        ({"expires": "Thu, 01 Jan 2026 00:00:05 GMT", "age": "2"}, Directives(max_age=3.0)),
        ({"expires": "0"}, Directives(max_age=0.0)),
        ({"expires": "Thu, 01 Jan 1970 00:00:00 GMT", "date": DATE}, Directives(max_age=0.0)),
        (
            {"expires": "Thu, 01 Jan 2026 00:00:05 GMT", "cache-control": "max-age=60"},
            Directives(max_age=60.0),  # max-age wins over Expires
        ),
        ({"vary": "Accept-Encoding, User-Agent"}, Directives()),
        ({"vary": "*"}, Directives(no_cache=True)),
        ({"vary": "accept, X-Request-ID"}, Directives(no_cache=True)),
        ({"vary": "Traceparent"}, Directives(no_cache=True)),
        ({"vary": "TraceState"}, Directives(no_cache=True)),
    ],
)
def test_expires_and_vary_are_read_as_an_http_cache_would(
    headers: dict[str, str], expected: Directives
) -> None:
    assert of_response(headers, NOW) == expected
