"""Protection of one participant, wrapped around the transport with its signature.

In the order a call meets them: the circuit breaker's refusal (at once, without
a task, while it is open), the rate limit (a token reserved before anything
else, refused at once unless it comes early enough for the call to have its
whole timeout before the request's deadline; given back if the call's callers
leave while it waits), the call's time bound, the bulkhead (calls in flight at
most), the breaker's admission, and one retry
of a retryable failure within a retry budget. Every refusal is a reply, a
``TransportFailure``, never an exception: a stage is tested by handing it a
fake transport.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from contracts import ErrorKind, Outcome

from ._breaker import BreakerState, CircuitBreaker
from ._rate_limit import RateLimit
from ._response import Reply
from ._settings import ParticipantSettings
from ._stage import ParticipantStats
from ._statuses import meaning
from ._transport import OutboundRequest, Transport, TransportFailure, TransportResponse

log = logging.getLogger("aggregator.client")


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


class Protection:
    """A participant's transport, protected. ``breaker`` is its circuit breaker."""

    def __init__(
        self,
        transport: Transport,
        settings: ParticipantSettings,
        *,
        name: str,
        clock: Callable[[], float],
        rng: random.Random,
        stats: ParticipantStats,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        protection = settings.protection
        self._transport = transport
        self._name = name
        self._timeout = settings.timeout_ms / 1000
        self._rng = rng
        self._stats = stats
        # Made inside the running loop (StatusAggregator's 'async with'), which every
        # call then uses: looking it up again costs a getpid() each time.
        self._loop = loop
        self._retry = protection.retry
        self._backoff = protection.retry_backoff_ms / 1000
        self._budget = RetryBudget(
            ratio=protection.retry_budget_ratio, minimum=protection.retry_budget_min
        )
        self._bulkhead = asyncio.Semaphore(protection.max_concurrency)
        rate = protection.rate_limit
        self._rate = RateLimit(rate, clock=clock) if rate else None
        self.breaker = CircuitBreaker(
            threshold=protection.breaker_threshold,
            reset_after=protection.breaker_reset_ms / 1000,
            probes=protection.breaker_probes,
            clock=clock,
        )
        self._expired: set[asyncio.Task[object]] = set()  # calls cut by their time bound

    def __call__(self, request: OutboundRequest) -> Reply | Awaitable[Reply]:
        if self.breaker.state is BreakerState.OPEN:
            return self._circuit_open()
        return self._bounded(request)

    def _circuit_open(self) -> TransportFailure:
        return TransportFailure(
            Outcome.UNAVAILABLE,
            ErrorKind.CIRCUIT_OPEN,
            # What opened it, not the running count: a failed probe each reset period
            # would otherwise change the answer (its validator, a watcher's event).
            f"circuit open after {self.breaker.threshold} consecutive failures",
        )

    def _expire(self, task: asyncio.Task[object]) -> None:
        self._expired.add(task)
        task.cancel()

    async def _bounded(self, request: OutboundRequest) -> Reply:
        """The call, ended by its timeout or the request's deadline, whichever is first."""
        self._stats.fetches += 1
        loop = self._loop
        if self._rate is not None:
            # A token before anything else, waited for only while the call can still
            # have its whole timeout before the request's deadline.
            left = request.deadline - loop.time() - self._timeout
            wait = self._rate.reserve(within=left if left > 0 else 0.0)
            if wait is None:
                return TransportFailure(
                    Outcome.UNAVAILABLE,
                    ErrorKind.THROTTLED,
                    "rate limit reached for this participant",
                )
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:  # its callers left: the call is not made
                    self._rate.release()
                    raise
        now = loop.time()
        ends = min(request.deadline, now + self._timeout)
        # The bound: a timer that cancels this task, turned into a timeout below. An
        # asyncio.timeout context did the same at three times the cost
        # (bench/RESULTS.md). Every await of the call is inside the ``try``, so the
        # cancellation can land nowhere else.
        task = asyncio.current_task(loop)
        assert task is not None
        timer = loop.call_at(ends, self._expire, task)
        stage = ErrorKind.BULKHEAD_FULL
        try:
            async with self._bulkhead:
                stage = ErrorKind.TIMEOUT
                return await self._admitted(request, ends)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            task.uncancel()  # the cancellation was the time bound's own: it ends here
            detail = (
                "too many calls in flight to this participant"
                if stage is ErrorKind.BULKHEAD_FULL
                else f"no answer within {round((ends - now) * 1000)} ms"
            )
            return TransportFailure(Outcome.UNAVAILABLE, stage, detail)
        finally:
            timer.cancel()
            self._expired.discard(task)

    async def _admitted(self, request: OutboundRequest, ends: float) -> Reply:
        """The call as the circuit breaker admits it, retried once when it may be."""
        probe = self.breaker.admit()
        if probe is None:
            return self._circuit_open()
        healthy: bool | None = None  # what the last attempt that ended says
        try:
            reply = await self._send(request)
            healthy = _healthy(reply)
            self._budget.deposit()
            if self._should_retry(reply, ends):
                self._stats.retries += 1
                await asyncio.sleep(self._rng.uniform(0, self._backoff))
                reply = await self._send(request)
                healthy = _healthy(reply)
        except asyncio.CancelledError:
            # Cut by its time bound, the call failed; cancelled because its callers
            # left before any attempt ended, it says nothing about the participant.
            if healthy is None and asyncio.current_task() in self._expired:
                healthy = False
            raise
        finally:
            if healthy is None:
                self.breaker.abandon(probe=probe)
            else:
                self.breaker.record(success=healthy, probe=probe)
        return reply

    def _should_retry(self, reply: Reply, ends: float) -> bool:
        retryable = (
            reply.retryable
            if isinstance(reply, TransportFailure)
            else meaning(reply.status).retryable
        )
        return (
            retryable
            and self._retry
            and self._loop.time() + self._backoff < ends
            and self._budget.withdraw()
        )

    async def _send(self, request: OutboundRequest) -> Reply:
        try:
            return await self._transport(request)
        except Exception:  # an injected transport must not fail the whole status
            log.exception("%s: the transport failed on GET %s", self._name, request.url)
            return TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "transport error")


def _healthy(reply: TransportResponse | TransportFailure) -> bool:
    """Whether the participant looked able to serve: what the circuit breaker counts."""
    if isinstance(reply, TransportFailure):
        return reply.outcome is not Outcome.UNAVAILABLE
    return not meaning(reply.status).breaker_failure
