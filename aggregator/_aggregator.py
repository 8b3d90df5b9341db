"""StatusAggregator: the library's entry point, and what the gateway serves."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

from contracts import Source, WorkflowStatus

from ._breaker import BreakerState
from ._errors import NotOpen
from ._http_client import AiohttpTransport
from ._ids import IdPolicy
from ._merge import merge
from ._part import Part
from ._participant import Observer, ParticipantClient, ParticipantStats
from ._settings import Settings
from ._transport import Transport

USER_AGENT = "choreography-status-aggregator/0.1"
BASE_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": USER_AGENT,
}


class StatusAggregator:
    """Answers "what is the status of workflow X?" by asking its participants now.

    Example::

        async with StatusAggregator(Settings.from_file("aggregator.toml")) as agg:
            status = await agg.status("order-42")
            many = await agg.status_many(["order-42", "order-43"])

    ``transport`` replaces the network (tests pass an async function);
    ``clock`` returns epoch seconds and drives ages, cache lifetimes and the
    circuit breakers; ``rng`` drives retry jitter; ``observer`` is told about
    every upstream call (the gateway's metrics use it).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.definition = settings.definition()
        self._ids = IdPolicy(settings.id_pattern)
        self._deadline = settings.deadline_ms / 1000
        self._clock = clock
        self._rng = rng or random.Random()
        self._observer = observer
        self._given_transport = transport
        self._own_transport: AiohttpTransport | None = None
        self._clients: tuple[ParticipantClient, ...] = ()

    async def __aenter__(self) -> StatusAggregator:
        transport = self._given_transport
        if transport is None:
            self._own_transport = await AiohttpTransport().__aenter__()
            transport = self._own_transport
        self._clients = tuple(
            ParticipantClient(
                participant,
                self.settings.participants[participant.name],
                self.settings.cache,
                transport=transport,
                clock=self._clock,
                rng=self._rng,
                base_headers=BASE_HEADERS,
                observer=self._observer,
            )
            for participant in self.definition.participants
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        clients, self._clients = self._clients, ()
        await asyncio.gather(*(client.aclose() for client in clients))
        if self._own_transport is not None:
            await self._own_transport.__aexit__(exc_type, exc, tb)
            self._own_transport = None

    @property
    def is_open(self) -> bool:
        """Inside ``async with``, with its outbound session (if it owns one) open."""
        own = self._own_transport
        return bool(self._clients) and (own is None or own.is_open)

    def remaining_freshness(self, status: WorkflowStatus) -> float:
        """Seconds until the first shown part of ``status`` leaves the cache (0 if any is stale)."""
        cache = self.settings.cache
        remaining = float("inf")
        for name, part in status.participants.items():
            if part.source is None:
                continue
            if part.source is Source.STALE:
                return 0.0
            final = part.state in self.definition.by_name[name].terminal
            ttl = (cache.terminal_ttl_ms if final else cache.ttl_ms) / 1000
            remaining = min(remaining, ttl - (part.age_ms or 0) / 1000)
        return max(0.0, remaining) if remaining != float("inf") else 0.0

    def check_id(self, workflow_id: str) -> str:
        """Validate an id; return it as a URL path segment or raise InvalidWorkflowId."""
        return self._ids.segment(workflow_id)

    async def status(
        self, workflow_id: str, *, scope: str = "", headers: Mapping[str, str] | None = None
    ) -> WorkflowStatus:
        """The merged status of one workflow.

        ``scope`` partitions the cache (the gateway passes the tenant), so a part
        fetched for one scope is never served to another. ``headers`` are sent to
        every participant with the calls this status makes.
        Raises InvalidWorkflowId before any participant is asked.
        """
        return await self._status(workflow_id, self.check_id(workflow_id), scope, headers or {})

    async def status_many(
        self,
        workflow_ids: Iterable[str],
        *,
        scope: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> list[WorkflowStatus]:
        """Statuses for many workflows, in the given order, at most
        ``max_concurrent_statuses`` at a time. Every id is validated first."""
        ids = list(workflow_ids)
        segments = [self.check_id(workflow_id) for workflow_id in ids]
        limit = asyncio.Semaphore(self.settings.max_concurrent_statuses)

        async def one(workflow_id: str, segment: str) -> WorkflowStatus:
            async with limit:
                return await self._status(workflow_id, segment, scope, headers or {})

        return list(await asyncio.gather(*map(one, ids, segments)))

    async def _status(
        self, workflow_id: str, segment: str, scope: str, headers: Mapping[str, str]
    ) -> WorkflowStatus:
        if not self._clients:
            raise NotOpen("use the aggregator inside 'async with StatusAggregator(...)'")
        key = (scope, workflow_id)
        parts: dict[str, Part | None] = {c.name: c.cached(key) for c in self._clients}
        missing = [c for c in self._clients if parts[c.name] is None]
        if missing:
            deadline = asyncio.get_running_loop().time() + self._deadline
            fetched = await asyncio.gather(
                *(c.resolve(key, segment, deadline=deadline, headers=headers) for c in missing)
            )
            parts.update(zip((c.name for c in missing), fetched, strict=True))
        complete = {name: part for name, part in parts.items() if part is not None}
        return merge(self.definition, workflow_id, complete, self._clock())

    def stats(self) -> dict[str, ParticipantStats]:
        """Per participant counters: fetches, cache hits, coalesced waits, stale serves."""
        return {client.name: client.stats for client in self._clients}

    def breaker_states(self) -> dict[str, BreakerState]:
        return {client.name: client.breaker.state for client in self._clients}
