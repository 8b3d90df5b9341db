"""A budget of log lines, so that no caller or participant can flood the log."""

from __future__ import annotations

import time
from collections.abc import Callable


class LogBudget:
    """At most ``burst`` lines per ``window`` seconds; the lines left out are counted,
    and the next line taken says how many.

    >>> now = [0.0]
    >>> budget = LogBudget(burst=1, window=60, clock=lambda: now[0])
    >>> budget.take(), budget.take(), budget.take()
    (0, None, None)
    >>> now[0] = 60; budget.take()
    2
    """

    __slots__ = ("_burst", "_clock", "_left_out", "_started", "_taken", "_window")

    def __init__(
        self, *, burst: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = burst
        self._window = window
        self._clock = clock
        self._started = float("-inf")
        self._taken = 0
        self._left_out = 0

    def take(self) -> int | None:
        """None when this line must be left out; else how many were left out before it."""
        now = self._clock()
        if now - self._started >= self._window:
            self._started, self._taken = now, 0
        if self._taken >= self._burst:
            self._left_out += 1
            return None
        self._taken += 1
        left_out, self._left_out = self._left_out, 0
        return left_out
