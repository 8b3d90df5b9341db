"""The event bus: a small interface, and an in-process, at-least-once implementation."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol

from ._events import Event, EventType

Handler = Callable[[Event], Awaitable[None]]
log = logging.getLogger("participants.bus")


class Bus(Protocol):
    """How participants talk: publish facts, subscribe to the ones they react to."""

    def subscribe(self, event_type: EventType, handler: Handler) -> None: ...

    async def publish(self, event: Event) -> None: ...


class InProcessBus:
    """Delivers each event to every subscriber at least once, in its own task.

    With ``duplicate_rate`` > 0 an event is sometimes delivered twice, as real
    brokers do; handlers must be idempotent. A handler that raises gets the
    event again, up to ``attempts`` times.

    >>> bus = InProcessBus(duplicate_rate=0.0)
    """

    def __init__(
        self, *, duplicate_rate: float = 0.0, rng: random.Random | None = None, attempts: int = 3
    ) -> None:
        self._handlers: dict[EventType, list[Handler]] = defaultdict(list)
        self._duplicate_rate = duplicate_rate
        self._rng = rng or random.Random()
        self._attempts = attempts
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.published = 0
        self.delivered = 0
        self.duplicated = 0

    def subscribe(self, event_type: EventType, handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    async def publish(self, event: Event) -> None:
        if self._closed:
            return  # shutting down: nobody is left to react
        self.published += 1
        for handler in self._handlers[event.type]:
            copies = 2 if self._rng.random() < self._duplicate_rate else 1
            self.duplicated += copies - 1
            for _ in range(copies):
                task = asyncio.create_task(self._deliver(handler, event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, handler: Handler, event: Event) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await handler(event)
            except Exception:
                log.exception("handler failed on %s (attempt %d)", event.type, attempt)
            else:
                self.delivered += 1
                return

    async def drain(self) -> None:
        """Return once every delivery started so far, and any it started, has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def __aenter__(self) -> InProcessBus:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
