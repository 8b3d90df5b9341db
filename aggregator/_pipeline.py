"""One participant's pipeline, composed once at start-up.

    fresh parts -> coalescing -> [shared parts] -> [tracing] -> last good part -> interpret
    (_cache)       (_coalesce)   (_shared)         (_tracing)   (_cache)          (_response)
    -> protection -> transport
       (_protection)

The shared parts stage is there with a shared store (``cache.backend``), whose
in-process layer the fresh parts then are; the tracing stage only while spans can
be recorded (``Tracing.live``).

Each stage takes the next as an argument (``_stage``); this module only puts
them together and gives the aggregator one way in, ``ParticipantPipeline.part``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from functools import partial

from contracts import Source

from ._breaker import CircuitBreaker
from ._cache import FreshParts, LastGood, PartCache
from ._coalesce import Coalescing
from ._part import Part
from ._protection import Protection
from ._response import Interpret
from ._rules import ParticipantDef
from ._settings import CacheSettings, ParticipantSettings
from ._shared import LocalParts, SharedParts
from ._shared_store import SharedStore
from ._stage import Ask, Observer, ParticipantStats, Stage
from ._tracing import Traced, Tracing
from ._transport import Transport


class ParticipantPipeline:
    """How the aggregator gets one participant's part of a workflow.

    ``part(ask)`` gives the part at once when it can (fresh in the cache, or the
    last good one while the circuit is open), else a future of the call that
    brings it: await it, or ``abandon`` it. ``ask_again(ask)`` is the same without
    the fresh part: it joins the call in flight or makes one. ``stats``, ``breaker`` and
    ``in_flight()`` are views for metrics and tests; read them, never change them.
    """

    def __init__(
        self,
        participant: ParticipantDef,
        settings: ParticipantSettings,
        cache: CacheSettings,
        *,
        transport: Transport,
        clock: Callable[[], float],
        rng: random.Random,
        observer: Observer | None = None,
        tracing: Tracing | None = None,
        shared: SharedStore | None = None,
    ) -> None:
        self.name = participant.name
        self.stats = ParticipantStats()
        loop = asyncio.get_running_loop()
        # With a shared store, the parts kept here are its in-process layer.
        kept: Callable[..., PartCache] = (
            PartCache if shared is None else partial(LocalParts, hold=cache.local_ms / 1000)
        )
        self._cache = kept(
            ttl=cache.ttl_ms / 1000,
            terminal_ttl=cache.terminal_ttl_ms / 1000,
            stale=cache.stale_ms / 1000,
            max_entries=cache.max_entries,
            terminal=participant.terminal,
            clock=clock,
        )
        protection = Protection(
            transport, settings, name=self.name, clock=clock, rng=rng, stats=self.stats, loop=loop
        )
        self.breaker: CircuitBreaker = protection.breaker
        interpret = Interpret(
            protection,
            participant,
            url=settings.url,
            max_body_bytes=settings.max_body_bytes,
            clock=clock,
            timer=time.perf_counter,  # not loop.time(): uvloop's counts whole milliseconds
            observer=observer,
            traced=tracing is not None,
        )
        call: Stage = LastGood(interpret, self._cache)
        if tracing is not None:
            call = Traced(call, tracing, participant=self.name, url=settings.url)
        if isinstance(self._cache, LocalParts):
            assert shared is not None
            call = SharedParts(
                call,
                store=shared,
                local=self._cache,
                name=self.name,
                model=participant.model,
                stats=self.stats,
            )
        self._coalescing = Coalescing(
            call, name=self.name, stats=self.stats, loop=loop, tracing=tracing
        )
        self.part: Callable[[Ask], Part | asyncio.Future[Part]] = FreshParts(
            self._coalescing, self._cache
        )
        # Past the fresh part: a call now (or the one in flight), to confirm an anomaly.
        self.ask_again: Callable[[Ask], Part | asyncio.Future[Part]] = self._coalescing
        self.abandon = self._coalescing.abandon

    def stands_in_until(self, part: Part) -> float:
        """Until when ``part``, given at once in place of a call, would be given again:
        until the circuit lets a probe through, or the part leaves the stale window."""
        return min(self.breaker.reopens_at, self._cache.stale_until(part))

    def count_served(self, source: Source | None, outcome: str, times: int = 1) -> None:
        """Count parts served: by where they came from, and by outcome."""
        if source is Source.CACHE:
            self.stats.cache_hits += times
        elif source is Source.STALE:
            self.stats.stale_served += times
        self.stats.outcomes[outcome] += times

    def in_flight(self) -> list[asyncio.Task[None]]:
        """The calls in flight now, one task per part being fetched."""
        return self._coalescing.in_flight()

    async def aclose(self) -> None:
        """Cancel the calls still in flight and wait until they have ended."""
        await self._coalescing.aclose()
