"""Shared test helpers: participant bodies, settings, a recording in-memory transport,
and an event loop's timers run by hand."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aggregator import (
    OutboundRequest,
    Settings,
    StatusAggregator,
    TransportFailure,
    TransportResponse,
)
from aggregator.testing import ManualClock
from contracts import QUERY_PATHS

URLS = {name: f"http://{name}.test{path}" for name, path in QUERY_PATHS.items()}
JSON = {"content-type": "application/json"}


def body(participant: str, workflow_id: str, state: str, version: int = 1, **extra: Any) -> bytes:
    """A valid v1 answer for one of the built-in participants."""
    domains: dict[str, dict[str, Any]] = {
        "payment": {"amount": 1999, "currency": "EUR"},
        "inventory": {"items": [{"sku": "book-1", "quantity": 1}]},
        "shipping": {"carrier": "parcelco", "tracking_number": "PC123"},
    }
    domain = domains.get(participant, {})
    return json.dumps(
        {
            "workflow_id": workflow_id,
            "state": state,
            "version": version,
            "updated_at": "2026-01-01T10:00:00Z",
            **domain,
            **extra,
        }
    ).encode()


def ok(participant: str, workflow_id: str, state: str, version: int = 1) -> TransportResponse:
    return TransportResponse(200, JSON, body(participant, workflow_id, state, version))


NOT_FOUND = TransportResponse(404, JSON, b'{"title": "not found"}')


def settings(urls: dict[str, str] | None = None, **overrides: Any) -> Settings:
    data: dict[str, Any] = {"participants": {n: {"url": u} for n, u in (urls or URLS).items()}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Settings.model_validate(data)


Reply = TransportResponse | TransportFailure
Handler = Callable[[OutboundRequest], Awaitable[Reply]]


class Arrivals:
    """How many times something happened, and a way to wait until it has n times."""

    def __init__(self) -> None:
        self.count = 0
        self._waiting: list[tuple[int, asyncio.Event]] = []

    def add(self) -> None:
        self.count += 1
        for wanted, event in self._waiting:
            if self.count >= wanted:
                event.set()

    async def reach(self, wanted: int) -> None:
        if self.count < wanted:
            event = asyncio.Event()
            self._waiting.append((wanted, event))
            await event.wait()


@dataclass
class FakeNetwork:
    """An injected transport: routes by participant host, records every request."""

    answers: dict[str, Reply | Handler] = field(default_factory=dict)
    requests: list[OutboundRequest] = field(default_factory=list)
    _arrivals: Arrivals = field(default_factory=Arrivals)

    def set(self, participant: str, answer: Reply | Handler) -> None:
        self.answers[participant] = answer

    def calls(self, participant: str) -> int:
        return sum(1 for r in self.requests if f"//{participant}.test/" in r.url)

    async def received(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        await self._arrivals.reach(count)

    async def __call__(self, request: OutboundRequest) -> Reply:
        self.requests.append(request)
        self._arrivals.add()
        participant = request.url.split("//", 1)[1].split(".", 1)[0]
        answer = self.answers.get(participant, NOT_FOUND)
        if isinstance(answer, TransportResponse | TransportFailure):
            return answer
        return await answer(request)


def all_states(network: FakeNetwork, workflow_id: str, **states: str) -> None:
    for participant, state in states.items():
        network.set(participant, ok(participant, workflow_id, state))


async def forever(_: OutboundRequest) -> Reply:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def make_aggregator(
    network: FakeNetwork, clock: ManualClock | None = None, *, seed: int = 7, **overrides: Any
) -> StatusAggregator:
    """An aggregator over ``network`` on a manual clock (its watches sleep on it),
    with ``settings(**overrides)`` and seeded retry jitter."""
    clock = clock or ManualClock()
    return StatusAggregator(
        settings(**overrides),
        transport=network,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(seed),
    )


@dataclass
class Timer:
    delay: float
    callback: Callable[[], object]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Timers:
    """An event loop's call_later, run by hand."""

    scheduled: list[Timer] = field(default_factory=list)

    def call_later(self, delay: float, callback: Callable[[], object], /) -> Timer:
        timer = Timer(delay, callback)
        self.scheduled.append(timer)
        return timer

    def fire(self) -> None:
        """Run the one timer pending, as the loop would once its delay has passed."""
        (pending,) = [t for t in self.scheduled if not t.cancelled]
        pending.cancelled = True  # ran: it will not run again
        pending.callback()
