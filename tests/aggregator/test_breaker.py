"""The circuit breaker, on a clock moved by hand."""

from __future__ import annotations

from aggregator import BreakerState, CircuitBreaker
from aggregator.testing import ManualClock


def state(b: CircuitBreaker) -> BreakerState:
    return b.state


def breaker(clock: ManualClock, *, threshold: int = 3, probes: int = 2) -> CircuitBreaker:
    return CircuitBreaker(threshold=threshold, reset_after=5.0, probes=probes, clock=clock)


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert b.allow()
        b.record(success=False)


def test_opens_exactly_at_the_threshold() -> None:
    b = breaker(ManualClock())
    fail(b, 2)
    assert state(b) is BreakerState.CLOSED
    fail(b, 1)
    assert state(b) is BreakerState.OPEN
    assert b.allow() is False


def test_a_success_resets_the_count() -> None:
    b = breaker(ManualClock())
    fail(b, 2)
    assert b.allow()
    b.record(success=True)
    fail(b, 2)
    assert state(b) is BreakerState.CLOSED


def test_sends_nothing_while_open() -> None:
    clock = ManualClock()
    b = breaker(clock)
    fail(b, 3)
    clock.advance(4.999)
    assert [b.allow() for _ in range(100)] == [False] * 100


def test_half_open_admits_the_configured_probes_then_closes_on_success() -> None:
    clock = ManualClock()
    b = breaker(clock, probes=2)
    fail(b, 3)
    clock.advance(5.0)
    assert state(b) is BreakerState.HALF_OPEN
    assert [b.allow() for _ in range(4)] == [True, True, False, False]
    b.record(success=True)
    assert state(b) is BreakerState.CLOSED
    assert b.allow()


def test_half_open_reopens_on_failure() -> None:
    clock = ManualClock()
    b = breaker(clock, probes=1)
    fail(b, 3)
    clock.advance(5.0)
    assert b.allow()
    b.record(success=False)
    assert state(b) is BreakerState.OPEN
    clock.advance(4.0)
    assert b.allow() is False
    clock.advance(1.0)
    assert state(b) is BreakerState.HALF_OPEN


def test_counts_each_opening_and_closing_and_says_when_it_reopens() -> None:
    clock = ManualClock()
    b = breaker(clock, probes=1)
    assert (b.changes, b.reopens_at) == (0, float("-inf"))
    fail(b, 3)
    assert (b.changes, b.reopens_at) == (1, clock() + 5.0)
    clock.advance(5.0)
    assert b.allow()
    b.record(success=False)  # a failed probe opens it again, for another 5 s
    assert (b.changes, b.reopens_at) == (2, clock() + 5.0)
    clock.advance(5.0)
    assert b.allow()
    b.record(success=True)
    assert (b.changes, b.reopens_at) == (3, float("-inf"))
    b.record(success=True)  # already closed: nothing changes
    assert b.changes == 3


def test_a_call_admitted_while_closed_frees_no_probe_when_it_ends_half_open() -> None:
    """Probes are counted by how a call was admitted, not by the state it ends in."""
    clock = ManualClock()
    b = breaker(clock, threshold=1, probes=1)
    slow = b.admit()  # admitted while closed; still in flight below
    assert slow is False
    assert b.admit() is False
    b.record(success=False, probe=False)  # another call fails: open
    clock.advance(5)
    probe = b.admit()
    assert probe is True and b.admit() is None  # the one probe is out
    b.abandon(probe=slow)  # the slow call is given up, while half-open
    assert b.admit() is None  # ... and frees no probe: still one in flight
    b.abandon(probe=probe)
    assert b.admit() is True
