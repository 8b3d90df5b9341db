"""StatusAggregator: the library's entry point, and what the gateway serves."""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

from contracts import Outcome, Source, WorkflowStatus

from ._answer import Answer, Rendering
from ._breaker import BreakerState
from ._errors import NotOpen
from ._http_client import AiohttpTransport
from ._ids import IdPolicy
from ._part import Part
from ._participant import Flight, Observer, ParticipantClient, ParticipantStats
from ._settings import Settings
from ._transport import Transport
from ._version import DISTRIBUTION, __version__

USER_AGENT = f"{DISTRIBUTION}/{__version__}"
BASE_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": USER_AGENT,
}


@dataclass(slots=True)
class _Reusable:
    """A rendering kept for the workflow it answered, and what decides its reuse."""

    rendering: Rendering
    circuits: tuple[int, ...] | None  # with stand-ins: the breakers' change counts then
    kinds: int  # the counter its answers are counted under (StatusAggregator._kinds_of)


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
        cache = settings.cache
        self._ttl = cache.ttl_ms / 1000
        self._terminal_ttl = cache.terminal_ttl_ms / 1000
        # One rendering per workflow and scope, reused while the same cached (or standing
        # in) parts are served, oldest first out; those of parts just fetched go with
        # their calls instead (_answer). An OrderedDict: a dict's oldest key costs a scan
        # over the slots its deletions left (7.6 us an eviction at 20,000 entries, 0.4 here).
        self._renderings: OrderedDict[tuple[str, str], _Reusable] = OrderedDict()
        self._max_renderings = cache.max_entries
        # Parts served by cached answers are counted once per answer, by the answer's
        # kinds of parts (each part's source and outcome), and added to each
        # participant's stats when they are read: a cached answer bumps one counter.
        self._kinds: dict[tuple[tuple[Source | None, Outcome], ...], int] = {}
        self._served: list[int] = []

    async def __aenter__(self) -> StatusAggregator:
        transport = self._given_transport
        if transport is None:
            own = AiohttpTransport(connection_limit=self.settings.outbound_connections)
            self._own_transport = await own.__aenter__()
            transport = self._own_transport
        self._clients = tuple(
            ParticipantClient(
                participant,
                self.settings.participants[participant.name],
                self.settings.cache,
                transport=transport,
                clock=self._clock,
                rng=self._rng,
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
        return (await self.answer(workflow_id, scope=scope, headers=headers)).status()

    async def answer(
        self, workflow_id: str, *, scope: str = "", headers: Mapping[str, str] | None = None
    ) -> Answer:
        """Like ``status``, but the answer can also render itself as JSON without
        building the model (``answer.json()``), and says how fresh it is."""
        cached = self.cached_answer(workflow_id, scope=scope)
        if cached is not None:
            return cached
        return await self._answer(workflow_id, self.check_id(workflow_id), scope, headers or {})

    def cached_answer(self, workflow_id: str, *, scope: str = "") -> Answer | None:
        """The answer, if every part of it is still fresh in the cache; no call is made.

        The parts are the very ones the cache would give, so they need not be
        looked up one by one (and the id was validated when they were first asked for).
        """
        entry = self._renderings.get((scope, workflow_id))
        if entry is None or not self._clients:
            return None
        now = self._now()
        if now >= entry.rendering.reusable_until:
            return None
        if entry.circuits is not None and entry.circuits != self._circuits():
            return None  # a breaker opened or closed since: stand-ins may differ
        self._served[entry.kinds] += 1
        return Answer(self.definition, entry.rendering, now)

    def _circuits(self) -> tuple[int, ...]:
        return tuple(client.breaker.changes for client in self._clients)

    async def status_many(
        self,
        workflow_ids: Iterable[str],
        *,
        scope: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> list[WorkflowStatus]:
        """Statuses for many workflows, in the given order, at most
        ``max_concurrent_statuses`` at a time. Every id is validated first."""
        answers = await self.answers(workflow_ids, scope=scope, headers=headers)
        return [answer.status() for answer in answers]

    async def answers(
        self,
        workflow_ids: Iterable[str],
        *,
        scope: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> list[Answer]:
        """Like ``status_many``, as answers (see ``answer``)."""
        ids = list(workflow_ids)
        segments = [self.check_id(workflow_id) for workflow_id in ids]
        limit = asyncio.Semaphore(self.settings.max_concurrent_statuses)

        async def one(workflow_id: str, segment: str) -> Answer:
            async with limit:
                return await self._answer(workflow_id, segment, scope, headers or {})

        return list(await asyncio.gather(*map(one, ids, segments)))

    async def _answer(
        self, workflow_id: str, segment: str, scope: str, headers: Mapping[str, str]
    ) -> Answer:
        if not self._clients:
            raise NotOpen("use the aggregator inside 'async with StatusAggregator(...)'")
        key = (scope, workflow_id)
        parts: dict[str, Part | None] = {}
        stand_ins: dict[str, float] = {}
        for c in self._clients:
            part = parts[c.name] = c.cached(key)
            if part is None and (part := c.refused(key)) is not None:
                parts[c.name] = part
                stand_ins[c.name] = c.refused_until(part)
        missing = [c for c in self._clients if parts[c.name] is None]
        flights: list[tuple[ParticipantClient, Flight]] = []
        if missing:
            deadline = asyncio.get_running_loop().time() + self._deadline
            headers = {**BASE_HEADERS, **headers}
            # Every call starts before any is awaited: they run concurrently, as tasks.
            flights = [
                (c, c.flight(key, segment, deadline=deadline, headers=headers)) for c in missing
            ]
            landing = 0
            try:
                for client, flight in flights:
                    parts[client.name] = await client.land(key, flight, deadline=deadline)
                    landing += 1
            except asyncio.CancelledError:  # the caller went away: so do the calls
                for client, flight in flights[landing + 1 :]:  # land() left the rest
                    client.abandon(key, flight)
                raise
        complete = {name: part for name, part in parts.items() if part is not None}
        if flights and any(part.source is Source.LIVE for part in complete.values()):
            # A part just fetched goes to the callers who shared its call and to no one
            # after them, and so does an answer made of it: the rendering is shared
            # through the call rather than stored, and is freed when they are done.
            # (Stored, it held memory no request could use until evicted: over a third
            # of the gateway's resident memory under a miss load, bench/RESULTS.md.)
            flight = flights[0][1]
            rendering = flight.shared
            if not (isinstance(rendering, Rendering) and rendering.serves(complete)):
                rendering = flight.shared = self._render(workflow_id, scope, complete, stand_ins)
            return Answer(self.definition, rendering, self._now())
        entry = self._renderings.get(key)
        rendering = None if entry is None else entry.rendering
        if rendering is None or not rendering.serves(complete) or stand_ins:
            rendering = self._render(workflow_id, scope, complete, stand_ins)
            if len(self._renderings) >= self._max_renderings:
                self._renderings.popitem(last=False)
            self._renderings[key] = _Reusable(
                rendering,
                self._circuits() if stand_ins else None,
                self._kinds_of(complete.values()),
            )
        return Answer(self.definition, rendering, self._now())

    def _render(
        self,
        workflow_id: str,
        scope: str,
        parts: Mapping[str, Part],
        stand_ins: Mapping[str, float],
    ) -> Rendering:
        return Rendering.of(
            self.definition,
            workflow_id,
            parts,
            ttl=self._ttl,
            terminal_ttl=self._terminal_ttl,
            stand_ins=stand_ins,
            scope=scope,
        )

    def _kinds_of(self, parts: Iterable[Part]) -> int:
        """The index of the counter for answers made of parts of these kinds."""
        kinds = tuple((part.source, part.outcome) for part in parts)
        index = self._kinds.get(kinds)
        if index is None:  # a few dozen at most: sources times outcomes
            index = self._kinds[kinds] = len(self._served)
            self._served.append(0)
        return index

    def _now(self) -> float:
        """The clock's time to the millisecond: the resolution answers are timed at."""
        return int(self._clock() * 1000 + 0.5) / 1000  # round(t, 3) costs twice as much

    def stats(self) -> dict[str, ParticipantStats]:
        """Per participant counters: fetches, cache hits, coalesced waits, stale serves."""
        for kinds, index in self._kinds.items():
            if served := self._served[index]:
                self._served[index] = 0
                for client, (source, outcome) in zip(self._clients, kinds, strict=True):
                    client.count_served(source, outcome, served)
        return {client.name: client.stats for client in self._clients}

    def breaker_states(self) -> dict[str, BreakerState]:
        return {client.name: client.breaker.state for client in self._clients}
