"""A token bucket per participant, on an injected clock: no waiting, no event loop."""

from __future__ import annotations

from collections.abc import Callable


class RateLimit:
    """At most ``rate`` calls a second in the long run, ``burst`` of them at once.

    ``reserve`` never waits: it says how long the caller must wait before its call,
    and books the call at that time, so callers queue in the order they reserved
    (the k-th one behind a drained bucket waits k / ``rate`` seconds). A caller
    that cannot be served within its ``within`` seconds is refused and books
    nothing. ``burst`` defaults to one second's worth of calls (at least one).

    A clock stepping back (a wall clock set back) counts as no time passing, and
    time counts again from its new reading: the step costs no token and grants
    none. (Waiting until it caught up again would throttle the participant for
    as long as the step.) A call booked and then not made is given back with
    ``release``.

    >>> now = [0.0]
    >>> limit = RateLimit(2, clock=lambda: now[0])
    >>> limit.reserve(1.0), limit.reserve(1.0), limit.reserve(1.0), limit.reserve(1.0)
    (0.0, 0.0, 0.5, 1.0)
    >>> limit.reserve(1.0) is None  # its token would come in 1.5 s
    True
    >>> now[0] = 1.5; limit.reserve(0.0)  # the two booked calls have had their tokens
    0.0
    """

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(
        self, rate: float, *, burst: int | None = None, clock: Callable[[], float]
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        if burst is None:
            burst = max(1, int(rate))
        elif burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = self._burst  # below zero: calls booked ahead of the refill
        self._last = clock()  # the reading the tokens were counted at

    def reserve(self, within: float) -> float | None:
        """Reserve one call: the seconds to wait before making it (0.0: now), or None
        when no token comes within ``within`` seconds (nothing is reserved then)."""
        now = self._clock()
        tokens = self._tokens
        if now > self._last:
            tokens += (now - self._last) * self._rate
            if tokens > self._burst:  # plain ifs: min() and max() cost more than the rest
                tokens = self._burst
        self._last = now  # after a step back too: time counts from here
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate
        if wait > within:
            self._tokens = tokens
            return None
        self._tokens = tokens - 1.0
        return wait

    def release(self) -> None:
        """Give back the token of a call booked and then not made (its caller left)."""
        tokens = self._tokens + 1.0
        self._tokens = self._burst if tokens > self._burst else tokens
