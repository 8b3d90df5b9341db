"""StatusAggregator: the library's entry point, and what the gateway serves."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from types import TracebackType

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from contracts import QUERY_HEADERS, Source, WorkflowStatus

from ._answer import Answer, Rendering
from ._breaker import BreakerState
from ._errors import NotOpen
from ._http_client import AiohttpTransport
from ._ids import IdPolicy
from ._merge import Verdict, judge
from ._part import Part
from ._pipeline import ParticipantPipeline
from ._reuse import Renderings
from ._settings import Settings
from ._shared_store import SharedStore
from ._stage import AnomalyCounts, Ask, Key, Observer, ParticipantStats
from ._tracing import Tracing
from ._transport import Transport
from ._version import DISTRIBUTION, __version__
from ._watch import Change, Watches

USER_AGENT = f"{DISTRIBUTION}/{__version__}"
BASE_HEADERS = {**QUERY_HEADERS, "User-Agent": USER_AGENT}


class StatusAggregator:
    """Answers "what is the status of workflow X?" by asking its participants now.

    Example::

        async with StatusAggregator(Settings.from_file("aggregator.toml")) as agg:
            status = await agg.status("order-42")
            many = await agg.status_many(["order-42", "order-43"])

    ``transport`` replaces the network (tests pass an async function);
    ``clock`` returns epoch seconds and drives ages, cache lifetimes and the
    circuit breakers; ``sleep`` waits between a watch's polls (tests pass
    ``ManualClock.sleep``); ``rng`` drives retry jitter; ``observer`` is told
    about every upstream call (the gateway's metrics use it); ``tracer_provider``
    makes the spans (OpenTelemetry; None: the global provider, as it is when the
    aggregator opens). Each participant call is a CLIENT span, a child of the span
    current where ``answer`` (or ``status``...) was awaited.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        observer: Observer | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = Tracing(tracer_provider)
        self.definition = settings.definition()
        self._check_id = IdPolicy(settings.id_pattern).check
        self._deadline = settings.deadline_ms / 1000
        self._clock = clock
        self._rng = rng or random.Random()
        self._observer = observer
        self._given_transport = transport
        self._own_transport: AiohttpTransport | None = None
        self._pipelines: tuple[ParticipantPipeline, ...] = ()
        cache = settings.cache
        self._ttl = cache.ttl_ms / 1000
        self._terminal_ttl = cache.terminal_ttl_ms / 1000
        self._renderings = Renderings(
            max_entries=cache.max_entries,
            circuits=self._circuits,
            hold=cache.local_ms / 1000 if cache.shared else None,
        )
        self.shared: SharedStore | None = None  # the shared parts store, when open
        self.watches = Watches(
            self._answer,
            self.definition,
            ttl=self._ttl,
            clock=clock,
            sleep=sleep,
            max_total=settings.watch.max_watchers,
            max_per_workflow=settings.watch.max_watchers_per_workflow,
        )
        # Anomalies in each answer made afresh (not in one served again), and those
        # withdrawn after asking again: read them, never change them.
        self.anomalies = AnomalyCounts()

    async def __aenter__(self) -> StatusAggregator:
        self.watches.closed = False
        transport = self._given_transport
        if transport is None:
            own = AiohttpTransport(connection_limit=self.settings.outbound_connections)
            self._own_transport = await own.__aenter__()
            transport = self._own_transport
        tracing = self.tracing if self.tracing.decide() else None
        if self.settings.cache.shared:
            cache = self.settings.cache
            self.shared = await SharedStore(
                cache,
                # A call ends by its request's deadline at the latest.
                lease_ms=self.settings.deadline_ms,
                # A part is of use while fresh, or standing in.
                keep_ms=max(cache.ttl_ms, cache.terminal_ttl_ms, cache.stale_ms),
            ).__aenter__()
        self._pipelines = tuple(
            ParticipantPipeline(
                participant,
                self.settings.participants[participant.name],
                self.settings.cache,
                transport=transport,
                clock=self._clock,
                rng=self._rng,
                observer=self._observer,
                tracing=tracing,
                shared=self.shared,
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
        self.watches.close()
        pipelines, self._pipelines = self._pipelines, ()
        await asyncio.gather(*(pipeline.aclose() for pipeline in pipelines))
        if self.shared is not None:
            await self.shared.__aexit__(exc_type, exc, tb)
            self.shared = None
        if self._own_transport is not None:
            await self._own_transport.__aexit__(exc_type, exc, tb)
            self._own_transport = None

    @property
    def is_open(self) -> bool:
        """Inside ``async with``, with its outbound session (if it owns one) open."""
        own = self._own_transport
        return bool(self._pipelines) and (own is None or own.is_open)

    def validate_id(self, workflow_id: str) -> None:
        """Raise InvalidWorkflowId unless ``workflow_id`` is allowed (``id_pattern``)."""
        self._check_id(workflow_id)

    def pipeline(self, participant: str) -> ParticipantPipeline:
        """One participant's pipeline, to read its ``stats``, ``breaker`` and
        ``in_flight()`` calls (inside ``async with``)."""
        for pipeline in self._pipelines:
            if pipeline.name == participant:
                return pipeline
        raise KeyError(participant)

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
        building the model (``answer.json()``), and says how fresh it is.

        The request's path: validate the id -> serve a rendering again if its parts
        are all still fresh (``_reuse``) -> gather the participants' parts -> judge
        them (the pure merge) -> render.
        """
        answer = self.cached_answer(workflow_id, scope=scope) or await self._answer(
            (scope, workflow_id), headers
        )
        if self.tracing.live:
            self.tracing.describe(trace.get_current_span(), answer)
        return answer

    def cached_answer(self, workflow_id: str, *, scope: str = "") -> Answer | None:
        """The answer, if it can be served again with no participant asked (all its
        parts are still fresh); None otherwise. Raises InvalidWorkflowId."""
        self._check_id(workflow_id)
        if not self._pipelines:
            return None
        now = self._now()
        rendering = self._renderings.reusable((scope, workflow_id), now)
        return None if rendering is None else Answer(self.definition, rendering, now)

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
        for workflow_id in ids:
            self._check_id(workflow_id)
        limit = asyncio.Semaphore(self.settings.max_concurrent_statuses)

        async def one(workflow_id: str) -> Answer:
            async with limit:
                return await self._answer((scope, workflow_id), headers)

        return list(await asyncio.gather(*map(one, ids)))

    async def watch(
        self, workflow_id: str, *, scope: str = "", headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[WorkflowStatus, None]:
        """The workflow's status now, then each time what it says changes (never for a
        mere change of ages); ends once the workflow is over (a final status).

        Example::

            async for status in agg.watch("order-42"):
                print(status.status, status.complete)

        All watchers of one workflow (per ``scope``) share one poller, which asks
        when the first shown part leaves the cache; it stops when the last watcher
        leaves (close the iterator promptly with ``contextlib.aclosing`` when
        breaking out early). Raises InvalidWorkflowId, and TooManyWatchers beyond
        ``watch.max_watchers`` or ``watch.max_watchers_per_workflow``; WatchFailed
        if the poller fails (its cause chained).
        """
        # Closed with this iterator, not when collected: its watcher leaves at once.
        async with aclosing(self.changes(workflow_id, scope=scope, headers=headers)) as changes:
            async for change in changes:
                yield change.answer.status()

    def changes(
        self, workflow_id: str, *, scope: str = "", headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[Change, None]:
        """Like ``watch``, as answers with their validator and whether they are final
        (what the gateway's event stream sends). Raises InvalidWorkflowId and NotOpen
        at once."""
        self._check_id(workflow_id)
        if not self._pipelines:
            raise NotOpen("use the aggregator inside 'async with StatusAggregator(...)'")
        return self.watches.changes((scope, workflow_id), headers)

    async def _answer(self, key: Key, headers: Mapping[str, str] | None) -> Answer:
        """Gather -> judge (confirming anomalies) -> render, for an id already validated."""
        if not self._pipelines:
            raise NotOpen("use the aggregator inside 'async with StatusAggregator(...)'")
        ask = Ask(
            key,
            asyncio.get_running_loop().time() + self._deadline,
            {**BASE_HEADERS, **(headers or {})},
        )
        parts, stand_ins, fetched = await self._gather(ask)
        now = self._now()
        rendering = self._renderings.made_of(
            key, parts, now, fetched=fetched, stand_ins=bool(stand_ins)
        )
        if rendering is None:
            verdict = judge(self.definition, parts, now)
            if verdict.recheck:
                parts, verdict, replaced = await self._confirm(ask, parts, verdict)
                fetched, now = fetched or replaced, self._now()
            rendering = Rendering.of(
                self.definition,
                key[1],
                parts,
                verdict,
                ttl=self._ttl,
                terminal_ttl=self._terminal_ttl,
                stand_ins=stand_ins,
                scope=key[0],
            )
            self._renderings.keep(key, rendering, now, fetched=fetched, stand_ins=bool(stand_ins))
            if verdict.anomalies:
                self.anomalies.raised(verdict.anomalies)
        for pipeline in self._pipelines:
            part = parts[pipeline.name]
            pipeline.count_served(part.source, part.outcome)
        return Answer(self.definition, rendering, now)

    async def _gather(self, ask: Ask) -> tuple[dict[str, Part], dict[str, float], bool]:
        """Every participant's part, asked concurrently; the parts given in place of a
        call (the circuit is open), with until when they would be again; and whether
        any part was just fetched."""
        # Every call starts before any is awaited: they run concurrently, as tasks.
        pending = [(pipeline, pipeline.part(ask)) for pipeline in self._pipelines]
        parts: dict[str, Part] = {}
        stand_ins: dict[str, float] = {}
        fetched = False
        for (pipeline, asked), part in zip(pending, await _collect(ask, pending), strict=True):
            if isinstance(asked, Part):  # fresh from the cache, or in place of a call
                if part.source is not Source.CACHE:
                    stand_ins[pipeline.name] = pipeline.stands_in_until(part)
            else:
                fetched = fetched or part.source is Source.LIVE
            parts[pipeline.name] = part
        return parts, stand_ins, fetched

    async def _confirm(
        self, ask: Ask, parts: dict[str, Part], verdict: Verdict
    ) -> tuple[dict[str, Part], Verdict, bool]:
        """Ask again the participants whose parts are too old for an anomaly to rest
        on (past their fresh part; joining a call in flight), and judge again. A part
        that comes back live replaces the old one (in the cache too); a participant
        that cannot be asked leaves its anomalies unconfirmed. The new parts may
        raise anomalies of their own: a round for each participant at most. Says
        whether any part was replaced."""
        first = verdict
        parts = dict(parts)
        failed: list[str] = []
        replaced = False
        for _ in self._pipelines:
            if not verdict.recheck:
                break
            pending = [
                (pipeline, pipeline.ask_again(ask))
                for pipeline in self._pipelines
                if pipeline.name in verdict.recheck
            ]
            for (pipeline, _asked), part in zip(pending, await _collect(ask, pending), strict=True):
                if part.source is Source.LIVE:
                    parts[pipeline.name] = part
                    replaced = True
                else:
                    failed.append(pipeline.name)
            verdict = judge(self.definition, parts, self._now(), unconfirmable=failed)
        self.anomalies.withdrawn(first.anomalies, verdict.anomalies)
        return parts, verdict, replaced

    def _circuits(self) -> tuple[int, ...]:
        return tuple(pipeline.breaker.changes for pipeline in self._pipelines)

    def _now(self) -> float:
        """The clock's time to the millisecond: the resolution answers are timed at."""
        return int(self._clock() * 1000 + 0.5) / 1000  # round(t, 3) costs twice as much

    def stats(self) -> dict[str, ParticipantStats]:
        """Per participant counters: fetches, cache hits, coalesced waits, stale serves."""
        for kinds, served in self._renderings.served():
            for pipeline, (source, outcome) in zip(self._pipelines, kinds, strict=True):
                pipeline.count_served(source, outcome, served)
        return {pipeline.name: pipeline.stats for pipeline in self._pipelines}

    def breaker_states(self) -> dict[str, BreakerState]:
        return {pipeline.name: pipeline.breaker.state for pipeline in self._pipelines}


Asked = tuple[ParticipantPipeline, Part | asyncio.Future[Part]]


async def _collect(ask: Ask, pending: list[Asked]) -> list[Part]:
    """The parts asked for, in order, each given at once or awaited. When the caller
    goes away, so do the calls it alone was waiting for."""
    parts: list[Part] = []
    try:
        for _, got in pending:
            parts.append(got if isinstance(got, Part) else await got)
    except asyncio.CancelledError:
        for pipeline, got in pending[len(parts) :]:
            if not isinstance(got, Part):
                pipeline.abandon(ask.key, got)
        raise
    return parts
