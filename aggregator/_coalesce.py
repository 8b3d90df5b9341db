"""Coalescing: callers who want the same part at the same moment share one call.

The first caller for a key starts the call (the rest of the pipeline) as a task;
every caller, the first included, gets a future of its own for the call's part
and awaits it, so a caller giving up never cancels the call the others wait
for. A caller that will not wait any more (its client went away) says so with
``abandon``: when nobody waits any more, the call is cancelled too.

A later caller never needs an earlier end than the call it joins: every request
has the same deadline length, and a call ends by its starter's deadline at the
latest (``_protection``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ._part import Part
from ._stage import Ask, Key, ParticipantStats, Stage
from ._tracing import Tracing


class Flight:
    """One call in flight and the callers waiting for its part."""

    __slots__ = ("started", "task", "waiters")

    def __init__(self) -> None:
        self.started = False  # whether its task has taken its first step
        # A future per caller still waiting, in the order they came (a dict: one
        # leaves in constant time).
        self.waiters: dict[asyncio.Future[Part], None] = {}
        self.task: asyncio.Task[None] | None = None

    def settle(self, result: Part | BaseException) -> None:
        for waiter in self.waiters:
            if not waiter.done():  # a caller that gave up has cancelled its own
                _resolve(waiter, result)
        self.waiters.clear()


def _resolve(waiter: asyncio.Future[Part], result: Part | BaseException) -> None:
    if isinstance(result, Part):
        waiter.set_result(result)
    elif isinstance(result, asyncio.CancelledError):
        waiter.cancel()
    else:
        waiter.set_exception(result)


class Coalescing:
    """The coalescing stage: at most one call per key in flight."""

    __slots__ = ("_flights", "_loop", "_name", "_next", "_stats", "_task_name", "_tracing")

    def __init__(
        self,
        next_stage: Stage,
        *,
        name: str,
        stats: ParticipantStats,
        loop: asyncio.AbstractEventLoop,
        tracing: Tracing | None = None,
    ) -> None:
        self._next = next_stage
        self._tracing = tracing  # given while spans are recorded: a joiner's span says so
        self._name = name
        self._task_name = f"call to {name}"
        self._stats = stats
        self._loop = loop
        self._flights: dict[Key, Flight] = {}

    def __call__(self, ask: Ask) -> Part | asyncio.Future[Part]:
        key = ask.key
        flight = self._flights.get(key)
        if flight is None:
            started = self._next(ask)
            if isinstance(started, Part):  # answered at once: nothing to share
                return started
            flight = self._flights[key] = Flight()
            flight.task = self._loop.create_task(
                self._fly(key, flight, started), name=self._task_name
            )
        else:
            self._stats.coalesced += 1
            if self._tracing is not None:
                self._tracing.joined(self._name)
        waiter: asyncio.Future[Part] = self._loop.create_future()
        flight.waiters[waiter] = None
        return waiter

    async def _fly(self, key: Key, flight: Flight, call: Awaitable[Part]) -> None:
        """A flight's task: one call, whose part every caller waiting on it gets."""
        flight.started = True
        try:
            part = await call
        except BaseException as exc:  # the callers get it, as if they awaited the call
            self._land(key, flight, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._land(key, flight, part)

    def _land(self, key: Key, flight: Flight, result: Part | BaseException) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        flight.settle(result)

    def abandon(self, key: Key, waiter: asyncio.Future[Part]) -> None:
        """The caller given ``waiter`` will not wait for the part: the call is
        cancelled when nobody else waits for it."""
        flight = self._flights.get(key)
        if flight is None or waiter not in flight.waiters:
            return  # its call has ended
        del flight.waiters[waiter]
        waiter.cancel()
        if not flight.waiters and flight.task is not None:
            # Out of reach at once: a caller arriving before the task has ended
            # starts a call of its own instead of joining one being cancelled.
            del self._flights[key]
            self._cancel(flight)

    def _cancel(self, flight: Flight) -> None:
        task = flight.task
        if task is None:
            return
        if flight.started:
            task.cancel()
        else:
            # Cancelled before its first step, the task would never start the stages'
            # coroutines it was given (each "never awaited"): it starts them, and the
            # cancellation reaches them where they first wait, to end as they should.
            self._loop.call_soon(task.cancel)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """The calls in flight, one per key."""
        return [flight.task for flight in self._flights.values() if flight.task is not None]

    async def aclose(self) -> None:
        """Cancel the calls still in flight and wait until they have ended."""
        flights = list(self._flights.values())
        tasks = self.in_flight()
        for flight in flights:
            self._cancel(flight)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flights.clear()
        for flight in flights:  # a task cancelled before it started settled nobody
            flight.settle(asyncio.CancelledError())
