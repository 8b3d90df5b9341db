"""The rate limit's token bucket, on a clock moved by hand: nothing sleeps."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator._rate_limit import RateLimit
from aggregator.testing import ManualClock

# Rates and steps are powers of two, so the expected waits are exact.
RATE = 4.0
INTERVAL = 1 / RATE  # 0.25 s between calls once the burst is spent


def reservations(limit: RateLimit, times: int, within: float = 60.0) -> list[float | None]:
    return [limit.reserve(within) for _ in range(times)]


def test_a_full_bucket_lets_the_burst_go_at_once_then_refuses_a_short_wait() -> None:
    limit = RateLimit(RATE, burst=3, clock=ManualClock())
    assert reservations(limit, 3, within=0.1) == [0.0, 0.0, 0.0]
    assert limit.reserve(0.1) is None  # the next token is 0.25 s away


@pytest.mark.parametrize(
    ("rate", "at_once", "then"),
    [
        (4.0, 4, 0.25),  # one second's worth of calls
        (2.5, 2, 0.4),  # never more at once than the rate allows in a second
        (0.5, 1, 2.0),  # a slow rate still lets one call through
    ],
)
def test_the_default_burst_is_one_seconds_worth_of_calls(
    rate: float, at_once: int, then: float
) -> None:
    limit = RateLimit(rate, clock=ManualClock())
    assert reservations(limit, at_once) == [0.0] * at_once
    assert limit.reserve(60.0) == pytest.approx(then)


def test_each_call_booked_ahead_waits_one_interval_more() -> None:
    limit = RateLimit(RATE, burst=1, clock=ManualClock())
    assert reservations(limit, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_a_wait_past_within_is_refused_and_books_nothing() -> None:
    limit = RateLimit(RATE, burst=1, clock=ManualClock())
    assert limit.reserve(1.0) == 0.0
    assert limit.reserve(0.2) is None
    assert limit.reserve(0.2) is None
    # Had the refusals booked their calls, this one would wait 0.75 s.
    assert limit.reserve(INTERVAL) == INTERVAL  # a token due exactly at ``within`` comes


def test_a_refusal_loses_none_of_the_refill_so_far() -> None:
    clock = ManualClock()
    limit = RateLimit(RATE, burst=1, clock=clock)
    assert limit.reserve(0.0) == 0.0
    clock.advance(INTERVAL / 2)
    assert limit.reserve(0.1) is None  # half a token: the other half is 0.125 s away
    clock.advance(INTERVAL / 2)
    assert limit.reserve(0.0) == 0.0


def test_a_call_past_its_deadline_is_refused_even_with_tokens_left() -> None:
    limit = RateLimit(RATE, burst=2, clock=ManualClock())
    assert limit.reserve(-0.001) is None
    assert reservations(limit, 2, within=0.0) == [0.0, 0.0]  # the refusal took none


def test_time_refills_the_bucket_but_never_past_the_burst() -> None:
    clock = ManualClock()
    limit = RateLimit(RATE, burst=2, clock=clock)
    assert reservations(limit, 2, within=0.0) == [0.0, 0.0]
    assert limit.reserve(0.0) is None
    clock.advance(INTERVAL)
    assert limit.reserve(0.0) == 0.0
    assert limit.reserve(0.0) is None
    clock.advance(3600.0)  # an idle hour is worth two calls at once, not 14,400
    assert reservations(limit, 3) == [0.0, 0.0, INTERVAL]


def test_the_refill_serves_booked_calls_before_a_newcomer() -> None:
    clock = ManualClock()
    limit = RateLimit(RATE, burst=1, clock=clock)
    assert reservations(limit, 4) == [0.0, 0.25, 0.5, 0.75]  # booked up to t = 0.75
    clock.advance(0.5)  # two of the booked calls have gone meanwhile
    assert limit.reserve(60.0) == 0.5  # at t = 1.0: behind the last booked call
    assert limit.reserve(0.6) is None  # t = 1.25 is 0.75 s away


def test_a_clock_stepping_back_grants_no_token_and_costs_none() -> None:
    clock = ManualClock()
    limit = RateLimit(RATE, burst=1, clock=clock)
    assert limit.reserve(0.0) == 0.0
    clock.advance(-10.0)
    assert limit.reserve(60.0) == INTERVAL  # as if the clock had stood still
    clock.advance(2 * INTERVAL)  # time counts from the new reading, not the old one
    assert limit.reserve(0.0) == 0.0
    assert limit.reserve(0.0) is None


def test_a_clock_swinging_back_and_forth_grants_at_most_a_burst() -> None:
    clock = ManualClock()
    limit = RateLimit(RATE, burst=1, clock=clock)
    assert limit.reserve(0.0) == 0.0
    for _ in range(10):
        clock.advance(-1.0)
        assert limit.reserve(0.0) is None  # stepping back grants nothing
        clock.advance(1.0)  # a second later by the clock: one burst, no more
        assert limit.reserve(0.0) == 0.0
        assert limit.reserve(0.0) is None


def test_a_token_given_back_serves_the_next_call() -> None:
    clock = ManualClock()
    limit = RateLimit(RATE, burst=2, clock=clock)
    assert [limit.reserve(0.0), limit.reserve(0.0), limit.reserve(0.0)] == [0.0, 0.0, None]
    limit.release()
    assert limit.reserve(0.0) == 0.0
    for _ in range(5):
        limit.release()  # more than were booked: the bucket holds a burst at most
    assert [limit.reserve(0.0), limit.reserve(0.0), limit.reserve(0.0)] == [0.0, 0.0, None]


@pytest.mark.parametrize("rate", [0, -1.0, math.nan])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimit(rate, clock=ManualClock())


def test_a_burst_must_let_one_call_through() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        RateLimit(RATE, burst=0, clock=ManualClock())


@given(
    rate=st.sampled_from([0.5, 1.0, 4.0, 10.0, 333.0]),
    burst=st.integers(1, 5),
    steps=st.lists(
        st.tuples(
            st.floats(0.0, 2.0, allow_nan=False),  # how far the clock moves first
            st.floats(0.0, 3.0, allow_nan=False),  # the caller's ``within``
        ),
        max_size=60,
    ),
)
def test_calls_keep_their_order_and_the_bucket_bounds_them(
    rate: float, burst: int, steps: list[tuple[float, float]]
) -> None:
    clock = ManualClock(0.0)
    limit = RateLimit(rate, burst=burst, clock=clock)
    slack = 1e-9
    starts: list[float] = []  # when each admitted call goes out, in reservation order
    for advance, within in steps:
        clock.advance(advance)
        wait = limit.reserve(within)
        if wait is not None:
            assert 0.0 <= wait <= within
            starts.append(clock() + wait)
    for earlier, later in pairwise(starts):
        assert later >= earlier - slack  # nobody overtakes a call reserved before it
    for first in range(len(starts)):
        for last in range(first, len(starts)):
            # Calls going out within any span of time: the burst plus what it refills.
            span = starts[last] - starts[first]
            assert last - first + 1 <= burst + span * rate + slack
