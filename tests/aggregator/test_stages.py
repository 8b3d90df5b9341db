"""Each stage of the per-participant pipeline on its own, handed a fake next stage.

fresh parts -> coalescing -> last good part -> (interpret: test_interpret.py) ->
protection -> transport, then the composition. No test waits for time to pass:
the cache, breaker and rate limit read a ManualClock; only the time bound of a
call is the event loop's (one test waits out a 50 ms timeout).
"""

from __future__ import annotations

import asyncio
import gc
import random
import warnings
from collections.abc import Awaitable

import pytest

from aggregator import OutboundRequest, Part, TransportFailure, TransportResponse
from aggregator._breaker import BreakerState
from aggregator._cache import FreshParts, LastGood, PartCache
from aggregator._cache_control import Directives, of_response, parse
from aggregator._coalesce import Coalescing
from aggregator._pipeline import ParticipantPipeline
from aggregator._protection import Protection
from aggregator._response import Reply
from aggregator._rules import ORDER_FULFILMENT
from aggregator._settings import CacheSettings, ParticipantSettings, ProtectionSettings
from aggregator._stage import Ask, Key, ParticipantStats, Stage
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome, PartError, ShippingView, Source
from tests.helpers import URLS, Arrivals, FakeNetwork, body, forever, ok

KEY: Key = ("acme", "o-1")
TIMED_OUT = PartError(kind=ErrorKind.TIMEOUT, detail="no answer within 500 ms")


def ask(key: Key = KEY, deadline: float = float("inf")) -> Ask:
    return Ask(key, deadline, {})


def part_cache(clock: ManualClock) -> PartCache:
    return PartCache(
        ttl=2.0,
        terminal_ttl=10.0,
        stale=60.0,
        max_entries=100,
        terminal=frozenset({"delivered"}),
        clock=clock,
    )


def shipping(
    clock: ManualClock,
    state: str = "in_transit",
    version: int = 1,
    directives: Directives | None = None,
) -> Part:
    """A live ok part, as the interpret stage makes it."""
    view = ShippingView.model_validate_json(body("shipping", "o-1", state, version))
    return Part(Outcome.OK, Source.LIVE, view, clock(), directives=directives or parse(None))


def timed_out() -> Part:
    return Part(Outcome.UNAVAILABLE, error=TIMED_OUT)


class Next:
    """A next stage answering ``answer`` at once, or, ``later``, with a coroutine."""

    def __init__(self, answer: Part, *, later: bool = False) -> None:
        self.answer = answer
        self.later = later
        self.asks: list[Ask] = []

    def __call__(self, ask: Ask) -> Part | Awaitable[Part]:
        self.asks.append(ask)
        return self._later() if self.later else self.answer

    async def _later(self) -> Part:
        return self.answer


async def settled(got: Part | Awaitable[Part]) -> Part:
    return got if isinstance(got, Part) else await got


# FreshParts


def test_a_fresh_part_is_the_answer_at_once_and_the_next_stage_is_not_asked() -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    cache.store(KEY, shipping(clock))
    next_stage = Next(timed_out())
    clock.advance(1.9)
    got = FreshParts(next_stage, cache)(ask())
    assert isinstance(got, Part) and got.source is Source.CACHE
    assert got.view is not None and got.view.state == "in_transit"
    assert next_stage.asks == []


def test_on_a_miss_the_next_stage_answer_is_passed_through_as_it_is() -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    cache.store(("acme", "other"), shipping(clock))
    answer = object()  # whatever the next stage answers: a part, a future, a coroutine
    asks: list[Ask] = []

    def next_stage(asked: Ask) -> object:
        asks.append(asked)
        return answer

    the_ask = ask()
    assert FreshParts(next_stage, cache)(the_ask) is answer
    assert asks == [the_ask]


def test_an_expired_part_goes_to_the_next_stage() -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    cache.store(KEY, shipping(clock, version=1))
    fetched = shipping(clock, version=2)
    next_stage = Next(fetched)
    clock.advance(2.0)  # the time to live is 2 s
    got = FreshParts(next_stage, cache)(ask())
    assert got is fetched
    assert len(next_stage.asks) == 1


# Coalescing


class Held:
    """A next stage whose calls wait for ``release``. Every call answers a new Part
    object (or raises ``fail``), so sharing is seen by identity."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.release = asyncio.Event()
        self.asks: list[Ask] = []
        self.parts: list[Part] = []
        self.cancelled = 0
        self._started = Arrivals()

    def __call__(self, ask: Ask) -> Awaitable[Part]:
        self.asks.append(ask)
        return self._call(len(self.asks))

    @property
    def started(self) -> int:
        return self._started.count

    async def until_started(self, count: int) -> None:
        """Return once ``count`` calls are running."""
        await self._started.reach(count)

    async def _call(self, number: int) -> Part:
        self._started.add()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.fail is not None:
            raise self.fail
        part = Part(Outcome.NOT_FOUND, Source.LIVE, fetched_at=float(number))
        self.parts.append(part)
        return part


def coalescing(next_stage: Stage, stats: ParticipantStats | None = None) -> Coalescing:
    return Coalescing(
        next_stage,
        name="payment",
        stats=stats or ParticipantStats(),
        loop=asyncio.get_running_loop(),
    )


def waiter(got: Part | asyncio.Future[Part]) -> asyncio.Future[Part]:
    assert isinstance(got, asyncio.Future), f"answered at once: {got!r}"
    return got


async def test_two_asks_for_the_same_key_share_one_call_and_one_part() -> None:
    held = Held()
    stage = coalescing(held)
    first, second = waiter(stage(ask())), waiter(stage(ask()))
    assert first is not second  # each caller has a future of its own
    assert len(stage.in_flight()) == 1
    held.release.set()
    parts = await asyncio.gather(first, second)
    assert len(held.asks) == 1
    assert parts[0] is parts[1] is held.parts[0]
    assert stage.in_flight() == []


async def test_different_keys_make_separate_calls() -> None:
    held = Held()
    stage = coalescing(held)
    one = waiter(stage(ask(("acme", "o-1"))))
    other = waiter(stage(ask(("acme", "o-2"))))
    tenant = waiter(stage(ask(("zeta", "o-1"))))
    assert len(stage.in_flight()) == 3
    held.release.set()
    parts = await asyncio.gather(one, other, tenant)
    assert [a.key for a in held.asks] == [("acme", "o-1"), ("acme", "o-2"), ("zeta", "o-1")]
    assert len({id(p) for p in parts}) == 3


async def test_coalesced_counts_the_callers_who_joined_a_call() -> None:
    held = Held()
    stats = ParticipantStats()
    stage = coalescing(held, stats)
    callers = [waiter(stage(ask())) for _ in range(3)]
    waiter(stage(ask(("acme", "o-2"))))  # a call of its own: joins nothing
    assert stats.coalesced == 2
    held.release.set()
    await asyncio.gather(*callers)
    assert stats.coalesced == 2


async def test_a_part_answered_at_once_is_returned_as_it_is_without_a_task() -> None:
    at_once = Part(Outcome.UNAVAILABLE, error=TIMED_OUT)
    stats = ParticipantStats()
    stage = coalescing(Next(at_once), stats)
    assert stage(ask()) is at_once
    assert stage(ask()) is at_once
    assert stage.in_flight() == []
    assert stats.coalesced == 0


async def test_abandoned_by_its_only_caller_the_call_is_cancelled() -> None:
    held = Held()
    stage = coalescing(held)
    only = waiter(stage(ask()))
    await held.until_started(1)
    [task] = stage.in_flight()
    stage.abandon(KEY, only)
    assert stage.in_flight() == []
    assert only.cancelled()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert held.cancelled == 1


async def test_abandoned_by_one_of_two_callers_the_call_goes_on_for_the_other() -> None:
    held = Held()
    stage = coalescing(held)
    leaving, staying = waiter(stage(ask())), waiter(stage(ask()))
    await held.until_started(1)
    stage.abandon(KEY, leaving)
    assert leaving.cancelled()
    assert len(stage.in_flight()) == 1
    held.release.set()
    part = await staying
    assert part is held.parts[0]
    assert held.cancelled == 0 and len(held.asks) == 1


async def test_a_caller_arriving_after_an_abandonment_starts_a_call_of_its_own() -> None:
    """The cancelled call has not ended yet when the next caller asks: joining it
    would give that caller a cancellation, and its ending must not drop the new call."""
    held = Held()
    stage = coalescing(held)
    leaving = waiter(stage(ask()))
    await held.until_started(1)
    [cancelled] = stage.in_flight()
    stage.abandon(KEY, leaving)
    arriving = waiter(stage(ask()))  # the cancelled task has not run since
    assert not cancelled.done()
    assert len(held.asks) == 2
    [new] = stage.in_flight()
    assert new is not cancelled
    await asyncio.gather(cancelled, return_exceptions=True)  # the old call ends first
    assert stage.in_flight() == [new]
    held.release.set()
    part = await arriving
    assert part is held.parts[0]
    assert held.cancelled == 1


async def test_a_call_abandoned_before_its_task_ran_is_ended_quietly() -> None:
    """Abandoned at once (a client gone as soon as it asked), before the call's task
    took a step: the coroutines the next stages answered must still be ended (each
    would warn "never awaited"), and the call goes no further than where it first
    waits. A caller arriving meanwhile gets a call of its own."""
    held = Held()

    async def abandon_at_once() -> None:
        stage = coalescing(held)
        leaving = waiter(stage(ask()))
        [cancelled] = stage.in_flight()
        stage.abandon(KEY, leaving)  # the task has not taken a step
        arriving = waiter(stage(ask()))
        assert len(held.asks) == 2 and len(stage.in_flight()) == 1
        await asyncio.gather(cancelled, return_exceptions=True)
        held.release.set()
        assert (await arriving) is held.parts[0]
        assert held.started == 2 and held.cancelled == 1  # the abandoned one, at once

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await abandon_at_once()
        gc.collect()  # the abandoned call's coroutine, if still open, warns now
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_an_exception_from_the_next_stage_reaches_every_waiter() -> None:
    held = Held(fail=ZeroDivisionError("defect"))
    stage = coalescing(held)
    callers = [waiter(stage(ask())) for _ in range(3)]
    [task] = stage.in_flight()
    held.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [ZeroDivisionError] * 3
    assert len(held.asks) == 1
    assert stage.in_flight() == []
    await asyncio.gather(task, return_exceptions=True)
    assert task.exception() is None  # given to the callers, not left unretrieved


async def test_aclose_cancels_the_calls_in_flight_and_waits_for_them() -> None:
    held = Held()
    stage = coalescing(held)
    callers = [waiter(stage(ask(("acme", f"o-{n}")))) for n in range(2)]
    await held.until_started(2)
    tasks = stage.in_flight()
    await asyncio.wait_for(stage.aclose(), timeout=30)
    assert all(task.done() and task.cancelled() for task in tasks)
    assert held.cancelled == 2
    assert all(caller.cancelled() for caller in callers)
    assert stage.in_flight() == []


# LastGood


@pytest.fixture(params=[False, True], ids=["at_once", "later"])
def later(request: pytest.FixtureRequest) -> bool:
    """Whether the next stage answers with an awaitable rather than at once."""
    answer: bool = request.param
    return answer


async def through(stage: LastGood, *, later: bool) -> Part:
    got = stage(ask())
    assert isinstance(got, Part) is not later  # at once stays at once, later stays later
    return await settled(got)


async def test_a_live_ok_part_is_kept_and_returned(later: bool) -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    live = shipping(clock)
    got = await through(LastGood(Next(live, later=later), cache), later=later)
    assert got is live
    kept = cache.fresh(KEY)
    assert kept is not None and kept.source is Source.CACHE and kept.view == live.view
    fresh = FreshParts(Next(timed_out()), cache)(ask())
    assert isinstance(fresh, Part) and fresh.source is Source.CACHE


async def test_a_failure_after_a_good_part_gives_the_good_part_stale(later: bool) -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    good = shipping(clock)
    await through(LastGood(Next(good), cache), later=False)
    clock.advance(30)
    failed = timed_out()
    got = await through(LastGood(Next(failed, later=later), cache), later=later)
    assert (got.outcome, got.source, got.error) == (Outcome.UNAVAILABLE, Source.STALE, TIMED_OUT)
    assert got.view == good.view and got.fetched_at == good.fetched_at


async def test_a_failure_without_a_good_part_is_returned(later: bool) -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    failed = timed_out()
    got = await through(LastGood(Next(failed, later=later), cache), later=later)
    assert got is failed
    assert cache.known_good(KEY) is None


async def test_an_older_version_shows_the_kept_part_and_is_not_kept(later: bool) -> None:
    clock = ManualClock()
    cache = part_cache(clock)
    await through(LastGood(Next(shipping(clock, "delivered", version=5)), cache), later=False)
    clock.advance(1)
    older = shipping(clock, "scheduled", version=3)
    got = await through(LastGood(Next(older, later=later), cache), later=later)
    assert got.view is not None and (got.view.state, got.view.version) == ("delivered", 5)
    assert got.source is Source.STALE and got.outcome is Outcome.OK
    assert got.error is not None and got.error.kind is ErrorKind.VERSION_REGRESSION
    assert "3" in got.error.detail and "5" in got.error.detail
    kept = cache.fresh(KEY)
    assert kept is not None and kept.view is not None and kept.view.version == 5


async def test_a_part_its_participant_said_not_to_store_is_returned_not_kept() -> None:
    clock = ManualClock()
    for said in (parse("no-store"), of_response({"cache-control": "private"}, clock())):
        cache = part_cache(clock)
        live = shipping(clock, directives=said)
        assert await through(LastGood(Next(live), cache), later=False) is live
        assert cache.fresh(KEY) is None and cache.known_good(KEY) is None


# Protection


class Script:
    """A fake transport: records every request and answers the scripted replies in
    order (the last one again and again). ``RAISE`` raises, ``HANG`` never answers."""

    RAISE = object()
    HANG = object()

    def __init__(self, *replies: Reply | object) -> None:
        self.replies = list(replies)
        self.requests: list[OutboundRequest] = []
        self.cancelled = 0
        self._arrivals = Arrivals()

    async def received(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        await self._arrivals.reach(count)

    async def __call__(self, request: OutboundRequest) -> Reply:
        self.requests.append(request)
        self._arrivals.add()
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply is Script.RAISE:
            raise RuntimeError("a defect in the transport")
        if reply is Script.HANG:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        assert isinstance(reply, TransportResponse | TransportFailure)
        return reply


HTTP_200 = ok("payment", "o-1", "captured")
HTTP_500 = TransportResponse(500, {}, b"")
HTTP_502 = TransportResponse(502, {}, b"")
HTTP_503 = TransportResponse(503, {}, b"")
REFUSED = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "refused", retryable=True)


def protection(
    transport: Script,
    clock: ManualClock | None = None,
    stats: ParticipantStats | None = None,
    *,
    timeout_ms: int = 10_000,
    **protect: object,
) -> Protection:
    settings = ParticipantSettings.model_validate(
        {
            "url": "http://p/x/{workflow_id}",
            "timeout_ms": timeout_ms,
            "protection": ProtectionSettings.model_validate({"retry_backoff_ms": 1, **protect}),
        }
    )
    return Protection(
        transport,
        settings,
        name="p",
        clock=clock or ManualClock(),
        rng=random.Random(7),
        stats=stats or ParticipantStats(),
        loop=asyncio.get_running_loop(),
    )


def request(deadline_in: float = 30.0) -> OutboundRequest:
    loop = asyncio.get_running_loop()
    return OutboundRequest(
        url="http://p/x/o-1", headers={}, max_body_bytes=262_144, deadline=loop.time() + deadline_in
    )


def later_reply(reply: Reply | Awaitable[Reply]) -> Awaitable[Reply]:
    assert not isinstance(reply, TransportResponse | TransportFailure), f"at once: {reply!r}"
    return reply


def state_of(guarded: Protection) -> BreakerState:
    return guarded.breaker.state  # read through a call: mypy keeps no narrowing of it


async def call(guarded: Protection, deadline_in: float = 30.0) -> Reply:
    return await later_reply(guarded(request(deadline_in)))


async def test_an_open_circuit_refuses_at_once_without_calling() -> None:
    transport = Script(HTTP_503)
    stats = ParticipantStats()
    guarded = protection(transport, stats=stats, breaker_threshold=2)
    for _ in range(2):
        assert await call(guarded) == HTTP_503
    refused = guarded(request())
    assert isinstance(refused, TransportFailure)  # a value, not an awaitable
    assert (refused.outcome, refused.kind) == (Outcome.UNAVAILABLE, ErrorKind.CIRCUIT_OPEN)
    assert len(transport.requests) == 2
    assert stats.fetches == 2
    assert state_of(guarded) is BreakerState.OPEN


async def test_a_throttled_call_is_refused_without_calling_and_without_waiting() -> None:
    transport = Script(HTTP_200)
    guarded = protection(transport, ManualClock(), rate_limit=1)
    assert await call(guarded) == HTTP_200
    second = asyncio.ensure_future(later_reply(guarded(request(deadline_in=0.1))))
    await asyncio.sleep(0)  # one step of the call's task, no more
    assert second.done(), "the refused call waited"
    refused = second.result()
    assert isinstance(refused, TransportFailure)
    assert (refused.outcome, refused.kind) == (Outcome.UNAVAILABLE, ErrorKind.THROTTLED)
    assert len(transport.requests) == 1


async def drained(guarded: Protection, burst: int) -> None:
    """Spend the rate limit's burst (the clock stands still: no token comes back)."""
    for _ in range(burst):
        assert await call(guarded) == HTTP_200


async def test_a_call_waits_for_its_token_then_has_its_whole_timeout() -> None:
    """10 calls a second: the 11th waits 0.1 s for its token, which comes early enough
    for a 0.2 s timeout before the deadline; the wait is not taken from the call."""
    transport = Script(HTTP_200)
    guarded = protection(transport, ManualClock(), timeout_ms=200, rate_limit=10)
    await drained(guarded, 10)
    assert await call(guarded, deadline_in=0.2 + 0.5) == HTTP_200
    assert len(transport.requests) == 11 and state_of(guarded) is BreakerState.CLOSED


async def test_a_token_that_would_cut_the_call_s_timeout_is_refused_at_once() -> None:
    transport = Script(HTTP_200)
    guarded = protection(transport, ManualClock(), timeout_ms=200, rate_limit=10)
    await drained(guarded, 10)
    refused = guarded(request(deadline_in=0.2 + 0.05))  # the token is 0.1 s away
    assert isinstance(refused, Awaitable)
    reply = await refused
    assert isinstance(reply, TransportFailure) and reply.kind is ErrorKind.THROTTLED
    assert len(transport.requests) == 10


async def test_a_call_whose_callers_leave_while_it_waits_gives_its_token_back() -> None:
    transport = Script(HTTP_200)
    guarded = protection(transport, ManualClock(), timeout_ms=200, rate_limit=10)
    await drained(guarded, 10)
    waiting = asyncio.ensure_future(call(guarded, deadline_in=10.0))  # waits 0.1 s
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # Its token given back, the next call waits 0.1 s, not 0.2 s: within its 0.15 s.
    assert await call(guarded, deadline_in=0.2 + 0.15) == HTTP_200
    assert len(transport.requests) == 11


@pytest.mark.parametrize("failure", [REFUSED, HTTP_502], ids=["connection", "http_502"])
async def test_a_retryable_failure_is_retried_once(failure: Reply) -> None:
    transport = Script(failure, HTTP_200)
    stats = ParticipantStats()
    guarded = protection(transport, stats=stats)
    assert await call(guarded) == HTTP_200
    assert len(transport.requests) == 2
    assert stats.retries == 1 and stats.fetches == 1


async def test_a_retried_failure_is_not_retried_twice() -> None:
    transport = Script(REFUSED)
    stats = ParticipantStats()
    guarded = protection(transport, stats=stats)
    assert await call(guarded) == REFUSED
    assert len(transport.requests) == 2 and stats.retries == 1


async def test_a_failure_that_is_not_retryable_is_not_retried() -> None:
    not_retryable = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "reset")
    for failure in (HTTP_500, not_retryable):
        transport = Script(failure, HTTP_200)
        stats = ParticipantStats()
        guarded = protection(transport, stats=stats)
        assert await call(guarded) == failure
        assert len(transport.requests) == 1 and stats.retries == 0


async def test_no_retry_once_the_retry_budget_is_spent() -> None:
    transport = Script(REFUSED)
    stats = ParticipantStats()
    guarded = protection(transport, stats=stats, retry_budget_min=1, retry_budget_ratio=0)
    await call(guarded)  # spends the one retry in reserve
    assert len(transport.requests) == 2 and stats.retries == 1
    assert await call(guarded) == REFUSED
    assert len(transport.requests) == 3 and stats.retries == 1


async def test_a_transport_raising_is_a_connection_failure() -> None:
    transport = Script(Script.RAISE)
    guarded = protection(transport)
    reply = await call(guarded)
    assert isinstance(reply, TransportFailure)
    assert (reply.outcome, reply.kind) == (Outcome.UNAVAILABLE, ErrorKind.CONNECTION)
    assert guarded.breaker.consecutive_failures == 1


async def test_a_call_past_the_participant_timeout_is_a_timeout_and_a_failure() -> None:
    transport = Script(Script.HANG)
    guarded = protection(transport, timeout_ms=50, breaker_threshold=5)
    reply = await asyncio.wait_for(later_reply(guarded(request(deadline_in=5))), timeout=30)
    assert isinstance(reply, TransportFailure)
    assert (reply.outcome, reply.kind) == (Outcome.UNAVAILABLE, ErrorKind.TIMEOUT)
    assert reply.detail == "no answer within 50 ms"
    assert transport.cancelled == 1
    assert guarded.breaker.consecutive_failures == 1


async def test_a_timeout_leaves_the_calling_task_not_cancelling() -> None:
    """asyncio.timeout() and TaskGroup in the caller count the cancellations asked of
    its task; one asked and swallowed by the protection must be taken back."""
    guarded = protection(Script(Script.HANG), timeout_ms=50)

    async def caller() -> tuple[Reply, int]:
        current = asyncio.current_task()
        assert current is not None
        reply = await later_reply(guarded(request(deadline_in=5)))
        return reply, current.cancelling()

    reply, cancelling = await asyncio.wait_for(caller(), timeout=30)
    assert isinstance(reply, TransportFailure) and reply.kind is ErrorKind.TIMEOUT
    assert cancelling == 0


async def test_a_call_cancelled_by_its_caller_says_nothing_to_the_breaker() -> None:
    transport = Script(Script.HANG)
    guarded = protection(transport, breaker_threshold=1)
    calling = asyncio.ensure_future(later_reply(guarded(request(deadline_in=30))))
    await transport.received(1)
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert transport.cancelled == 1
    assert guarded.breaker.consecutive_failures == 0
    assert state_of(guarded) is BreakerState.CLOSED


async def test_a_probe_cancelled_by_its_caller_frees_its_place() -> None:
    clock = ManualClock()
    transport = Script(HTTP_503, Script.HANG, HTTP_200)
    guarded = protection(
        transport, clock, breaker_threshold=1, breaker_reset_ms=1000, breaker_probes=1
    )
    assert await call(guarded) == HTTP_503
    clock.advance(1.0)
    assert state_of(guarded) is BreakerState.HALF_OPEN
    probing = asyncio.ensure_future(later_reply(guarded(request(deadline_in=30))))
    await transport.received(2)
    probing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probing
    assert await call(guarded) == HTTP_200  # admitted as the next probe
    assert state_of(guarded) is BreakerState.CLOSED
    assert len(transport.requests) == 3


# The composition


async def test_a_first_ask_is_fetched_and_the_next_is_answered_at_once_from_the_cache() -> None:
    network = FakeNetwork({"payment": ok("payment", "o-1", "captured")})
    clock = ManualClock()
    pipeline = ParticipantPipeline(
        ORDER_FULFILMENT.by_name["payment"],
        ParticipantSettings(url=URLS["payment"], timeout_ms=10_000),
        CacheSettings(),
        transport=network,
        clock=clock,
        rng=random.Random(7),
    )
    deadline = asyncio.get_running_loop().time() + 30
    try:
        first = pipeline.part(Ask(KEY, deadline, {}))
        assert not isinstance(first, Part)
        live = await first
        assert (live.outcome, live.source, live.fetched_at) == (Outcome.OK, Source.LIVE, clock())
        assert live.view is not None and live.view.state == "captured"
        clock.advance(1)
        again = pipeline.part(Ask(KEY, deadline, {}))
        assert isinstance(again, Part)  # at once: no future, no task
        assert again.source is Source.CACHE and again.view == live.view
        assert pipeline.in_flight() == []
        assert network.calls("payment") == 1 and pipeline.stats.fetches == 1
    finally:
        await pipeline.aclose()


async def test_calls_abandoned_or_closed_before_they_start_end_quietly() -> None:
    """Through the whole pipeline (three coroutines deep): a call abandoned before
    its task took a step, and one cut by ``aclose`` likewise, leave no coroutine
    never awaited, and leave nothing in flight."""
    network = FakeNetwork({"payment": forever})

    async def abandon_then_close() -> None:
        pipeline = ParticipantPipeline(
            ORDER_FULFILMENT.by_name["payment"],
            ParticipantSettings(url=URLS["payment"], timeout_ms=10_000),
            CacheSettings(),
            transport=network,
            clock=ManualClock(),
            rng=random.Random(7),
        )
        deadline = asyncio.get_running_loop().time() + 30
        first = pipeline.part(Ask(("", "o-1"), deadline, {}))
        assert not isinstance(first, Part)
        pipeline.abandon(("", "o-1"), first)
        second = pipeline.part(Ask(("", "o-2"), deadline, {}))
        assert not isinstance(second, Part)
        await pipeline.aclose()
        assert pipeline.in_flight() == [] and second.cancelled()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await abandon_then_close()
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
