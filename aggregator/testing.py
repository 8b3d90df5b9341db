"""Helpers for testing code that embeds the aggregator: a clock you move by hand."""

from __future__ import annotations


class ManualClock:
    """A clock (epoch seconds) that only moves when told to.

    >>> clock = ManualClock(1_000.0)
    >>> clock.advance(2.5); clock()
    1002.5
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
