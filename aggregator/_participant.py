"""One participant as the aggregator sees it: cache, coalescing, protection, fetch.

The path of a part: fresh cache? -> a call already in flight for it? -> bulkhead
-> rate limit -> circuit breaker -> transport (one retry on connection errors)
-> interpret against the contract -> store, or fall back to the last good part.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from asyncio_throttle.throttler import Throttler

from contracts import ErrorKind, Outcome, PartError, Source

from ._breaker import BreakerState, CircuitBreaker
from ._cache import PartCache
from ._part import Part, failure
from ._response import interpret
from ._rules import ParticipantDef
from ._settings import CacheSettings, ParticipantSettings
from ._statuses import meaning
from ._transport import OutboundRequest, Transport, TransportFailure, TransportResponse

Key = tuple[str, str]  # (scope, workflow id)
log = logging.getLogger("aggregator.client")


class Observer(Protocol):
    """Told about every upstream call as it ends (metrics, tracing). Must not block."""

    def fetched(self, participant: str, part: Part, seconds: float) -> None: ...


@dataclass(slots=True)
class ParticipantStats:
    """Counters since start; read them, never write them."""

    fetches: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    stale_served: int = 0
    retries: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


class Flight:
    """A call in flight, shared by every caller who wants the same part meanwhile.

    Each caller waits on a future of its own, so one giving up (its deadline, its
    cancellation) never cancels the call the others wait for. When the last caller
    is cancelled (its client went away), nobody waits any more and the call is
    cancelled too.
    """

    __slots__ = ("allowed", "callers", "ends", "result", "shared", "task", "waiters")

    def __init__(self, ends: float, allowed: float) -> None:
        self.ends = ends  # event-loop time by which the call has ended, one way or another
        self.allowed = allowed  # the seconds it was given: its timeout, or less
        self.result: Part | BaseException | None = None  # what the call ended with
        self.waiters: list[asyncio.Future[Part]] = []
        self.task: asyncio.Task[None] | None = None
        self.callers = 0  # who asked for it and has not had its part or given up yet
        # Whatever the callers make of the call's part and share among themselves (the
        # aggregator keeps its rendering here); it goes when the last of them lets go.
        self.shared: object = None

    def wait(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Part]:
        """A future for the call's part (or its exception, or its cancellation)."""
        waiter: asyncio.Future[Part] = loop.create_future()
        if self.result is None:
            self.waiters.append(waiter)
        else:
            _resolve(waiter, self.result)
        return waiter

    def settle(self, result: Part | BaseException) -> None:
        self.result = result
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


class RetryBudget:
    """Retries allowed: ``ratio`` per call made, plus a reserve of ``minimum``."""

    __slots__ = ("_cap", "_ratio", "_tokens")

    def __init__(self, *, ratio: float, minimum: int) -> None:
        self._ratio = ratio
        self._cap = float(max(minimum, 1))
        self._tokens = float(minimum)

    def deposit(self) -> None:
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def withdraw(self) -> bool:
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class ParticipantClient:
    """Fetches one participant's part of a workflow, protected and coalesced."""

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
    ) -> None:
        self.participant = participant
        self.name = participant.name
        self._template = settings.url
        self._timeout = settings.timeout_ms / 1000
        self._max_body = settings.max_body_bytes
        self._transport = transport
        self._clock = clock
        self._rng = rng
        self._observer = observer
        # Made inside the running loop (StatusAggregator's 'async with'), which every
        # call then uses: looking it up again costs a getpid() each time.
        self._loop = asyncio.get_running_loop()
        protection = settings.protection
        self._retry = protection.retry
        self._backoff = protection.retry_backoff_ms / 1000
        self._budget = RetryBudget(
            ratio=protection.retry_budget_ratio, minimum=protection.retry_budget_min
        )
        self._bulkhead = asyncio.Semaphore(protection.max_concurrency)
        self._throttler = Throttler(protection.rate_limit) if protection.rate_limit else None
        self.breaker = CircuitBreaker(
            threshold=protection.breaker_threshold,
            reset_after=protection.breaker_reset_ms / 1000,
            probes=protection.breaker_probes,
            clock=clock,
        )
        self._cache = PartCache(
            ttl=cache.ttl_ms / 1000,
            terminal_ttl=cache.terminal_ttl_ms / 1000,
            stale=cache.stale_ms / 1000,
            max_entries=cache.max_entries,
            terminal=participant.terminal,
            clock=clock,
        )
        self._inflight: dict[Key, Flight] = {}
        self._expired: set[asyncio.Task[object]] = set()  # calls cancelled by their deadline
        self.stats = ParticipantStats()

    def cached(self, key: Key) -> Part | None:
        """The part from the fresh cache, if there is one (no awaiting)."""
        part = self._cache.fresh(key)
        if part is not None:
            self.count_served(part.source, part.outcome)
        return part

    def refused(self, key: Key) -> Part | None:
        """While the circuit is open: the part to show instead of a call (no task, no
        waiting), the last good one if any. None when a call may go out."""
        if self.breaker.state is not BreakerState.OPEN or key in self._inflight:
            return None
        part = self._fall_back(key, self._circuit_open())
        self.stats.outcomes[part.outcome] += 1
        return part

    def refused_until(self, part: Part) -> float:
        """Until when ``refused`` gives this very part, unless the breaker changes."""
        until = self.breaker.reopens_at
        if part.fetched_at is not None:
            until = min(until, part.fetched_at + self._cache.stale_window)
        return until

    def count_served(self, source: Source | None, outcome: Outcome, times: int = 1) -> None:
        """Count parts served from the cache, or standing in (see ``refused``)."""
        if source is Source.CACHE:
            self.stats.cache_hits += times
        elif source is Source.STALE:
            self.stats.stale_served += times
        self.stats.outcomes[outcome] += times

    def flight(
        self, key: Key, segment: str, *, deadline: float, headers: Mapping[str, str]
    ) -> Flight:
        """The call for this part: the one already in flight for it, or a new one.

        ``deadline`` is in event-loop time; callers wanting the same key share one call.
        """
        flight = self._inflight.get(key)
        if flight is None:
            now = self._loop.time()
            ends = min(deadline, now + self._timeout)
            flight = self._inflight[key] = Flight(ends, ends - now)
            flight.task = self._loop.create_task(self._fly(key, flight, segment, headers))
        else:
            self.stats.coalesced += 1
        flight.callers += 1
        return flight

    def abandon(self, key: Key, flight: Flight) -> None:
        """A caller of ``flight`` was cancelled: the call is cancelled as well when
        nobody else waits for it. (A caller that reached its deadline does not
        abandon the call: its part still comes, and is kept for the next request.)"""
        flight.callers -= 1
        if flight.callers <= 0 and flight.result is None and flight.task is not None:
            # Out of reach at once: a caller arriving before the task has ended
            # starts a call of its own instead of joining one being cancelled.
            if self._inflight.get(key) is flight:
                del self._inflight[key]
            flight.task.cancel()

    async def land(self, key: Key, flight: Flight, *, deadline: float) -> Part:
        """The part a call brings, or what stands in for it at ``deadline``.

        Never raises for anything the participant does.
        """
        waiter = flight.wait(self._loop)
        try:
            if deadline >= flight.ends:
                # The call ends by itself in time, with the precise reason if it fails.
                part = await waiter
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        part = await waiter
                except TimeoutError:
                    part = self._fall_back(
                        key,
                        failure(
                            Outcome.UNAVAILABLE, ErrorKind.TIMEOUT, "no answer within the deadline"
                        ),
                    )
        except asyncio.CancelledError:
            self.abandon(key, flight)
            raise
        flight.callers -= 1
        self.stats.outcomes[part.outcome] += 1
        return part

    def _expire(self, task: asyncio.Task[object]) -> None:
        self._expired.add(task)
        task.cancel()

    async def _fly(
        self, key: Key, flight: Flight, segment: str, headers: Mapping[str, str]
    ) -> None:
        """A flight's task: one call, whose part every caller waiting for it gets."""
        try:
            part = await self._fetch(key, segment, flight.ends, flight.allowed, headers)
        except BaseException as exc:  # the callers get it, as if they awaited the call
            self._settle(key, flight, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._settle(key, flight, part)

    def _settle(self, key: Key, flight: Flight, result: Part | BaseException) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        flight.settle(result)

    async def _fetch(
        self,
        key: Key,
        segment: str,
        call_deadline: float,
        allowed: float,
        headers: Mapping[str, str],
    ) -> Part:
        """One protected call, ending by ``call_deadline`` (event-loop time) at the latest."""
        self.stats.fetches += 1
        loop = self._loop
        # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds.
        started = time.perf_counter()
        # The call's bound: a timer that cancels this task, which ``_ask`` turns into
        # a timeout. An asyncio.timeout context did the same at three times the cost
        # (bench/RESULTS.md). Started here, the cancellation can only land inside
        # ``_ask``'s ``try``: every await of the call is in it.
        task = asyncio.current_task(loop)
        assert task is not None
        timer = loop.call_at(call_deadline, self._expire, task)
        try:
            part = await self._ask(key[1], segment, allowed, call_deadline, headers)
        finally:
            timer.cancel()
            self._expired.discard(task)
        if self._observer is not None:
            self._observer.fetched(self.name, part, time.perf_counter() - started)
        if part.source is not Source.LIVE:
            return self._fall_back(key, part)
        return self._keep(key, part)

    async def _ask(
        self,
        workflow_id: str,
        segment: str,
        allowed: float,
        call_deadline: float,
        headers: Mapping[str, str],
    ) -> Part:
        request = OutboundRequest(
            url=self._template.replace("{workflow_id}", segment),
            headers=headers,
            timeout=None,  # _fetch bounds the whole call, retry included
            max_body_bytes=self._max_body,
        )
        stage = ErrorKind.BULKHEAD_FULL
        try:
            async with self._bulkhead:
                if self._throttler is not None:
                    stage = ErrorKind.THROTTLED
                    await self._throttler.acquire()  # type: ignore[no-untyped-call]
                stage = ErrorKind.TIMEOUT
                answer = await self._call(request, call_deadline)
        except asyncio.CancelledError:
            if asyncio.current_task() not in self._expired:
                raise
            detail = {
                ErrorKind.BULKHEAD_FULL: "too many calls in flight to this participant",
                ErrorKind.THROTTLED: "rate limit reached for this participant",
            }.get(stage, f"no answer within {round(allowed * 1000)} ms")
            return failure(Outcome.UNAVAILABLE, stage, detail)
        if isinstance(answer, Part):  # the breaker refused the call
            return answer
        if isinstance(answer, TransportFailure):
            return failure(answer.outcome, answer.kind, answer.detail)
        return interpret(answer, self.participant, workflow_id, self._clock())

    async def _call(
        self, request: OutboundRequest, call_deadline: float
    ) -> TransportResponse | TransportFailure | Part:
        probe = self.breaker.admit()
        if probe is None:
            return self._circuit_open()
        healthy: bool | None = None  # what the last attempt that ended says
        try:
            answer = await self._send(request)
            healthy = _healthy(answer)
            self._budget.deposit()
            if self._should_retry(answer, call_deadline):
                self.stats.retries += 1
                await asyncio.sleep(self._rng.uniform(0, self._backoff))
                answer = await self._send(request)
                healthy = _healthy(answer)
        except asyncio.CancelledError:
            # Cut by its deadline, the call failed; cancelled because its callers
            # left before any attempt ended, it says nothing about the participant.
            if healthy is None and asyncio.current_task() in self._expired:
                healthy = False
            raise
        finally:
            if healthy is None:
                self.breaker.abandon(probe=probe)
            else:
                self.breaker.record(success=healthy, probe=probe)
        return answer

    def _circuit_open(self) -> Part:
        return failure(
            Outcome.UNAVAILABLE,
            ErrorKind.CIRCUIT_OPEN,
            f"circuit open after {self.breaker.consecutive_failures} consecutive failures",
        )

    def _should_retry(self, answer: TransportResponse | TransportFailure, deadline: float) -> bool:
        retryable = (
            answer.retryable
            if isinstance(answer, TransportFailure)
            else meaning(answer.status).retryable
        )
        return (
            retryable
            and self._retry
            and self._loop.time() + self._backoff < deadline
            and self._budget.withdraw()
        )

    async def _send(self, request: OutboundRequest) -> TransportResponse | TransportFailure:
        try:
            return await self._transport(request)
        except Exception:  # an injected transport must not fail the whole status
            log.exception("%s: the transport failed on GET %s", self.name, request.url)
            return TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "transport error")

    def _keep(self, key: Key, part: Part) -> Part:
        held = self._cache.known_good(key)
        if (
            held is not None
            and held.view is not None
            and part.view is not None
            and part.view.version < held.view.version
        ):
            detail = (
                f"answered version {part.view.version}, older than version "
                f"{held.view.version} already seen; the newer one is shown"
            )
            self.stats.stale_served += 1
            return replace(
                held,
                source=Source.STALE,
                error=PartError(kind=ErrorKind.VERSION_REGRESSION, detail=detail),
            )
        self._cache.store(key, part)
        return part

    def _fall_back(self, key: Key, failed: Part) -> Part:
        stale = self._cache.stand_in(key, failed.outcome, failed.error)
        if stale is None:
            return failed
        self.stats.stale_served += 1
        return stale

    async def aclose(self) -> None:
        """Cancel the calls still in flight and wait until they have ended."""
        tasks = [flight.task for flight in self._inflight.values() if flight.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _healthy(answer: TransportResponse | TransportFailure) -> bool:
    """Whether the participant looked able to serve: what the circuit breaker counts."""
    if isinstance(answer, TransportFailure):
        return answer.outcome is not Outcome.UNAVAILABLE
    return not meaning(answer.status).breaker_failure
