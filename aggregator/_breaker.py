"""A circuit breaker per participant, on an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calls to a participant after consecutive failures, then probes it.

    Closed: every call goes through; ``threshold`` consecutive failures open it.
    Open: no call goes through until ``reset_after`` seconds have passed.
    Half-open: at most ``probes`` calls go through; a success closes the
    breaker, a failure opens it again.

    >>> now = [0.0]
    >>> breaker = CircuitBreaker(threshold=1, reset_after=5.0, probes=1, clock=lambda: now[0])
    >>> breaker.record(success=False); breaker.state
    <BreakerState.OPEN: 'open'>
    >>> now[0] = 5.0; breaker.allow(), breaker.allow()
    (True, False)
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_opened_at",
        "_probes",
        "_probing",
        "_reset_after",
        "_threshold",
        "changes",
    )

    def __init__(
        self, *, threshold: int, reset_after: float, probes: int, clock: Callable[[], float]
    ) -> None:
        self._threshold = threshold
        self._reset_after = reset_after
        self._probes = probes
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = 0
        self.changes = 0  # times it has opened or closed; read, never write

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._reset_after:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def reopens_at(self) -> float:
        """When an open breaker lets a probe through (clock time); -inf when closed."""
        if self._opened_at is None:
            return float("-inf")
        return self._opened_at + self._reset_after

    @property
    def threshold(self) -> int:
        """Consecutive failures that open the circuit."""
        return self._threshold

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a call may go out now; an admission must be followed by ``record``
        (or ``abandon``)."""
        return self.admit() is not None

    def admit(self) -> bool | None:
        """Like ``allow``, saying how: None refused, True admitted as a half-open
        probe, False admitted while closed. Pass it back as ``probe``."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN or self._probing >= self._probes:
            return None
        self._probing += 1
        return True

    def abandon(self, *, probe: bool | None = None) -> None:
        """Report that an admitted call was given up before it ended (nobody waited
        for it any more): it says nothing about the participant, and frees its probe."""
        was_probe = self.state is BreakerState.HALF_OPEN if probe is None else probe
        if was_probe:
            self._probing = max(0, self._probing - 1)

    def record(self, *, success: bool, probe: bool | None = None) -> None:
        """Report how an admitted call ended. ``probe`` is what ``admit`` said; without
        it, a call ending while half-open is taken for a probe."""
        half_open = self.state is BreakerState.HALF_OPEN
        was_probe = half_open if probe is None else probe
        if was_probe:
            self._probing = max(0, self._probing - 1)
        if success:
            if self._opened_at is not None:
                self.changes += 1
            self._failures = 0
            self._opened_at = None
            self._probing = 0
            return
        self._failures += 1
        if half_open or self._failures >= self._threshold:
            self.changes += 1
            self._opened_at = self._clock()
            self._probing = 0
