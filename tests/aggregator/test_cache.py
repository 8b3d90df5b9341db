"""The part stores, on a clock moved by hand."""

from __future__ import annotations

from aggregator import Part
from aggregator._cache import PartCache
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome, PartError, ShippingView, Source
from tests.helpers import body


def cache(clock: ManualClock, max_entries: int = 100) -> PartCache:
    return PartCache(
        ttl=2.0,
        terminal_ttl=10.0,
        stale=60.0,
        max_entries=max_entries,
        terminal=frozenset({"delivered"}),
        clock=clock,
    )


def shipping(state: str, clock: ManualClock) -> Part:
    view = ShippingView.model_validate_json(body("shipping", "o-1", state))
    return Part(Outcome.OK, Source.LIVE, view, clock())


def test_fresh_within_ttl_then_known_good_until_the_stale_window_ends() -> None:
    clock = ManualClock()
    store = cache(clock)
    live = shipping("in_transit", clock)
    store.store("k", live)
    hit = store.fresh("k")
    assert hit is not None and hit.source is Source.CACHE and hit.fetched_at == live.fetched_at
    assert hit.view == live.view
    clock.advance(1.999)
    assert store.fresh("k") is not None
    clock.advance(0.001)
    assert store.fresh("k") is None
    assert store.known_good("k") == hit
    clock.advance(57.999)
    assert store.known_good("k") == hit
    clock.advance(0.001)
    assert store.known_good("k") is None


def test_a_final_state_is_kept_longer() -> None:
    clock = ManualClock()
    store = cache(clock)
    store.store("k", shipping("delivered", clock))
    clock.advance(9.9)
    assert store.fresh("k") is not None
    clock.advance(0.1)
    assert store.fresh("k") is None


def test_failures_are_never_stored() -> None:
    clock = ManualClock()
    store = cache(clock)
    for outcome in (Outcome.UNAVAILABLE, Outcome.INVALID):
        store.store("k", Part(outcome, error=PartError(kind=ErrorKind.TIMEOUT, detail="x")))
    assert store.fresh("k") is None and store.known_good("k") is None


def test_not_found_is_cached_but_is_not_a_known_good_part() -> None:
    clock = ManualClock()
    store = cache(clock)
    store.store("k", shipping("in_transit", clock))
    store.store("k", Part(Outcome.NOT_FOUND, Source.LIVE, fetched_at=clock()))
    hit = store.fresh("k")
    assert hit is not None and hit.outcome is Outcome.NOT_FOUND
    assert store.known_good("k") is None


def test_only_live_parts_are_stored() -> None:
    clock = ManualClock()
    store = cache(clock)
    stale = shipping("in_transit", clock)
    store.store("k", Part(stale.outcome, Source.STALE, stale.view, stale.fetched_at))
    assert store.fresh("k") is None


def test_entries_are_bounded_and_the_least_recently_used_makes_room() -> None:
    clock = ManualClock()
    store = cache(clock, max_entries=10)
    for i in range(50):
        store.store(i, shipping("in_transit", clock))
    assert len(store) == 10
    assert store.fresh(40) is not None  # read: now the most recently used
    store.store(50, shipping("in_transit", clock))
    assert store.fresh(40) is not None and store.fresh(41) is None
    assert len(store) == 10
