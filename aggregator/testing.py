"""Helpers for testing code that embeds the aggregator: a clock you move by hand."""

from __future__ import annotations

import asyncio


class ManualClock:
    """A clock (epoch seconds) that only moves when told to, and a ``sleep`` that
    ends when the clock has been moved past its end.

    >>> clock = ManualClock(1_000.0)
    >>> clock.advance(2.5); clock()
    1002.5

    Pass both to the aggregator, ``StatusAggregator(settings, clock=clock,
    sleep=clock.sleep)``; ``await clock.sleeping(n)`` returns once ``n`` sleeps
    are waiting for the clock, so a test moves it only when they are.
    """

    __slots__ = ("_sleepers", "_watchers", "now")

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._watchers: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        waiting = []
        for until, sleeper in self._sleepers:
            if until > self.now:
                waiting.append((until, sleeper))
            elif not sleeper.done():
                sleeper.set_result(None)
        self._sleepers = waiting

    async def sleep(self, seconds: float) -> None:
        sleeper = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, sleeper))
        self._tell()
        await sleeper

    async def sleeping(self, count: int = 1) -> None:
        """Return once ``count`` sleeps are waiting for the clock to move."""
        if self._asleep() < count:
            wanted = asyncio.get_running_loop().create_future()
            self._watchers.append((count, wanted))
            await wanted

    def _asleep(self) -> int:
        return sum(1 for _, sleeper in self._sleepers if not sleeper.done())

    def _tell(self) -> None:
        asleep = self._asleep()
        for count, wanted in self._watchers:
            if asleep >= count and not wanted.done():
                wanted.set_result(None)
        self._watchers = [(c, w) for c, w in self._watchers if not w.done()]
