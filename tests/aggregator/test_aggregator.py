"""Fan-out, cache, coalescing and protection, with the network replaced by a function."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from aggregator import (
    BreakerState,
    InvalidWorkflowId,
    NotOpen,
    OutboundRequest,
    Settings,
    StatusAggregator,
    TransportFailure,
    TransportResponse,
)
from aggregator._answer import Rendering
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome, Source
from tests.helpers import (
    JSON,
    NOT_FOUND,
    URLS,
    FakeNetwork,
    all_states,
    forever,
    make_aggregator,
    ok,
    settings,
)

REFUSED = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "cannot connect", True)
HTTP_503 = TransportResponse(503, {}, b"")


aggregator = make_aggregator


async def test_parts_are_fetched_concurrently() -> None:
    """Each participant answers only once all three calls are in flight."""
    arrived = 0
    everyone = asyncio.Event()

    async def barrier(request: OutboundRequest) -> TransportResponse:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            everyone.set()
        await everyone.wait()
        name = request.url.split("//")[1].split(".")[0]
        return ok(
            name, "o-1", {"payment": "captured", "inventory": "reserved"}.get(name, "scheduled")
        )

    network = FakeNetwork(dict.fromkeys(("payment", "inventory", "shipping"), barrier))
    async with aggregator(network) as agg:
        status = await agg.status("o-1")
    assert status.complete and status.status == "shipment_scheduled"


async def test_a_thousand_concurrent_callers_share_one_call_per_participant() -> None:
    release = asyncio.Event()

    async def held(request: OutboundRequest) -> TransportResponse:
        await release.wait()
        return (
            NOT_FOUND
            if "shipping" in request.url
            else ok(
                "payment" if "payment" in request.url else "inventory",
                "hot",
                "captured" if "payment" in request.url else "reserved",
            )
        )

    network = FakeNetwork(dict.fromkeys(("payment", "inventory", "shipping"), held))
    # Timeouts far beyond the time a busy machine takes to start 1000 callers: the
    # calls are held until every caller has joined, not until they time out.
    patient = {name: {"url": url, "timeout_ms": 60_000} for name, url in URLS.items()}
    async with aggregator(network, participants=patient, deadline_ms=60_000) as agg:
        callers = [asyncio.create_task(agg.status("hot")) for _ in range(1000)]
        await network.received(3)
        release.set()
        statuses = await asyncio.gather(*callers)
        stats = agg.stats()
    assert [network.calls(n) for n in ("payment", "inventory", "shipping")] == [1, 1, 1]
    assert all(s.status == "stock_reserved" and s.complete for s in statuses)
    assert all(s.participants["payment"].source == Source.LIVE for s in statuses)
    assert stats["payment"].fetches == 1 and stats["payment"].coalesced == 999


async def test_callers_sharing_calls_share_one_rendering_which_then_goes() -> None:
    """Parts just fetched go to the callers who shared the calls and to no one else:
    they share one rendering, and nothing holds it once they are done. An answer of
    cached parts is kept for the requests that follow."""
    release = asyncio.Event()

    async def held(request: OutboundRequest) -> TransportResponse:
        await release.wait()
        name = request.url.split("//")[1].split(".")[0]
        states = {"payment": "captured", "inventory": "reserved", "shipping": "in_transit"}
        return ok(name, "o-1", states[name])

    clock = ManualClock()
    network = FakeNetwork(dict.fromkeys(("payment", "inventory", "shipping"), held))
    given: list[Rendering] = []

    async def caller(agg: StatusAggregator) -> weakref.ref[Rendering]:
        rendering = (await agg.answer("o-1")).rendering
        given.append(rendering)
        return weakref.ref(rendering)

    async with aggregator(network, clock) as agg:
        callers = [asyncio.create_task(caller(agg)) for _ in range(3)]
        await network.received(3)
        release.set()
        renderings = await asyncio.gather(*callers)
        shared = len(given) == 3 and all(rendering is given[0] for rendering in given)
        given.clear()
        gc.collect()
        let_go = all(rendering() is None for rendering in renderings)
        cached = await agg.answer("o-1")  # every part from the cache now
        clock.advance(0.5)
        reused = agg.cached_answer("o-1")
    assert shared and let_go
    assert {part.source for part in cached.parts.values()} == {Source.CACHE}
    assert reused is not None and reused.rendering is cached.rendering
    assert network.calls("payment") == 1


async def test_a_caller_giving_up_leaves_the_shared_call_to_the_others() -> None:
    release = asyncio.Event()

    async def held(request: OutboundRequest) -> TransportResponse:
        await release.wait()
        return ok("payment", "hot", "captured")

    network = FakeNetwork({"payment": held})
    async with aggregator(network) as agg:
        leaving = asyncio.create_task(agg.status("hot"))
        staying = asyncio.create_task(agg.status("hot"))
        await network.received(3)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        release.set()
        status = await staying
        late = await agg.status("hot")  # the call's part went to the cache
    assert network.calls("payment") == 1
    assert status.participants["payment"].state == "captured"
    assert late.participants["payment"].source == Source.CACHE


async def test_a_defect_in_a_shared_call_reaches_every_caller() -> None:
    class Broken:
        def fetched(self, participant: str, part: object, seconds: float) -> None:
            raise ZeroDivisionError

    release = asyncio.Event()

    async def held(_: OutboundRequest) -> TransportResponse:
        await release.wait()
        return NOT_FOUND

    network = FakeNetwork(dict.fromkeys(("payment", "inventory", "shipping"), held))
    async with StatusAggregator(settings(), transport=network, observer=Broken()) as agg:
        callers = [asyncio.create_task(agg.status("o-1")) for _ in range(2)]
        await network.received(3)
        release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [ZeroDivisionError, ZeroDivisionError]
    assert network.calls("payment") == 1


async def test_cached_parts_are_served_within_their_ttl_then_fetched_again() -> None:
    clock = ManualClock()
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved", shipping="in_transit")
    async with aggregator(network, clock) as agg:
        first = await agg.status("o-1")
        clock.advance(1.5)
        second = await agg.status("o-1")
        assert len(network.requests) == 3
        clock.advance(0.5)
        third = await agg.status("o-1")
    assert {p.source for p in first.participants.values()} == {Source.LIVE}
    assert {p.source for p in second.participants.values()} == {Source.CACHE}
    assert {p.age_ms for p in second.participants.values()} == {1500}
    assert second.complete
    assert {p.source for p in third.participants.values()} == {Source.LIVE}
    assert len(network.requests) == 6


async def test_every_part_served_is_counted_once_cached_answers_included() -> None:
    clock = ManualClock()
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved")
    async with aggregator(network, clock) as agg:
        await agg.status("o-1")  # fetched: payment and inventory ok, shipping not found
        await agg.status("o-1")  # from the cache, part by part
        for _ in range(3):
            clock.advance(0.1)
            assert agg.cached_answer("o-1") is not None  # the same answer, reused
        before = agg.stats()["payment"].cache_hits
        await agg.status("o-1")  # the same path through answer()
        stats = agg.stats()
    assert before == 4 and stats["payment"].cache_hits == 5
    assert stats["payment"].outcomes == {Outcome.OK: 6}
    assert stats["shipping"].cache_hits == 5
    assert stats["shipping"].outcomes == {Outcome.NOT_FOUND: 6}
    assert stats["payment"].fetches == 1


async def test_a_failed_fetch_falls_back_to_the_last_good_part_then_to_nothing() -> None:
    clock = ManualClock()
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved", shipping="in_transit")
    async with aggregator(network, clock, cache={"ttl_ms": 2000, "stale_ms": 60_000}) as agg:
        await agg.status("o-1")
        network.set("shipping", HTTP_503)
        clock.advance(5)
        stale = await agg.status("o-1")
        clock.advance(56)
        gone = await agg.status("o-1")
    part = stale.participants["shipping"]
    assert (part.outcome, part.source, part.age_ms, part.state) == (
        Outcome.UNAVAILABLE,
        Source.STALE,
        5000,
        "in_transit",
    )
    assert part.error is not None and part.error.detail == "HTTP 503"
    assert stale.status == "in_transit" and not stale.complete
    missing = gone.participants["shipping"]
    assert (missing.source, missing.state, missing.outcome) == (None, None, Outcome.UNAVAILABLE)
    assert gone.status == "stock_reserved"


async def test_an_older_version_never_moves_a_part_backwards() -> None:
    clock = ManualClock()
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved")
    network.set("shipping", ok("shipping", "o-1", "delivered", version=4))
    async with aggregator(network, clock, cache={"terminal_ttl_ms": 2000}) as agg:
        await agg.status("o-1")
        network.set("shipping", ok("shipping", "o-1", "scheduled", version=2))
        clock.advance(3)
        status = await agg.status("o-1")
    shipping = status.participants["shipping"]
    assert (shipping.state, shipping.version, shipping.source) == ("delivered", 4, Source.STALE)
    assert status.status == "delivered"
    assert [a.code for a in status.anomalies] == ["version_regression"]
    assert shipping.error is not None and shipping.error.kind == ErrorKind.VERSION_REGRESSION


async def test_an_answer_marked_no_store_or_private_is_not_cached() -> None:
    for directive in ("no-store", "private, max-age=60"):
        network = FakeNetwork()
        headers = {**JSON, "cache-control": directive}
        network.set(
            "payment", TransportResponse(200, headers, ok("payment", "o-1", "captured").body)
        )
        async with aggregator(network) as agg:
            await agg.status("o-1")
            again = await agg.status("o-1")
        assert again.participants["payment"].source == Source.LIVE
        assert network.calls("payment") == 2


async def test_scopes_never_share_parts() -> None:
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured")
    async with aggregator(network) as agg:
        await agg.status("o-1", scope="tenant-a")
        other = await agg.status("o-1", scope="tenant-b")
        same = await agg.status("o-1", scope="tenant-a")
    assert other.participants["payment"].source == Source.LIVE
    assert same.participants["payment"].source == Source.CACHE
    assert network.calls("payment") == 2


async def test_headers_reach_every_participant_call() -> None:
    network = FakeNetwork()
    async with aggregator(network) as agg:
        await agg.status("o-1", headers={"X-Request-ID": "req-1"})
    assert len(network.requests) == 3
    for request in network.requests:
        assert request.headers["X-Request-ID"] == "req-1"
        assert request.headers["Accept-Encoding"] == "identity"
    assert sorted(r.url for r in network.requests) == [
        "http://inventory.test/reservations/o-1",
        "http://payment.test/payments/o-1",
        "http://shipping.test/shipments/o-1",
    ]


async def test_one_retry_on_a_connection_error() -> None:
    answers: list[TransportResponse | TransportFailure] = [
        REFUSED,
        ok("payment", "o-1", "captured"),
    ]

    async def flaky(_: OutboundRequest) -> TransportResponse | TransportFailure:
        return answers.pop(0)

    network = FakeNetwork({"payment": flaky})
    async with aggregator(network) as agg:
        status = await agg.status("o-1")
        retries = agg.stats()["payment"].retries
    assert status.participants["payment"].state == "captured"
    assert network.calls("payment") == 2 and retries == 1


@pytest.mark.parametrize(
    "answer",
    [
        HTTP_503,
        TransportFailure(Outcome.UNAVAILABLE, ErrorKind.TIMEOUT, "no answer in time"),
        TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "broken mid-body"),
    ],
)
async def test_no_retry_for_anything_but_a_connection_error(
    answer: TransportResponse | TransportFailure,
) -> None:
    network = FakeNetwork({"payment": answer})
    async with aggregator(network) as agg:
        status = await agg.status("o-1")
    assert status.participants["payment"].outcome == Outcome.UNAVAILABLE
    assert network.calls("payment") == 1


async def test_retries_stay_within_the_budget() -> None:
    network = FakeNetwork({"payment": REFUSED})
    protection = {"retry_budget_ratio": 0.2, "retry_budget_min": 3, "breaker_threshold": 10_000}
    payment = {"url": "http://payment.test/p/{workflow_id}", "protection": protection}
    cache = {"ttl_ms": 1, "stale_ms": 1}
    async with aggregator(network, cache=cache, participants={"payment": payment}) as agg:
        for i in range(100):
            await agg.status(f"o-{i}")
    assert network.calls("payment") <= 100 * 1.2 + 3
    assert network.calls("payment") > 100


async def test_the_circuit_opens_and_no_call_goes_out_while_open() -> None:
    clock = ManualClock()
    network = FakeNetwork({"shipping": HTTP_503})
    protection = {"breaker_threshold": 3, "breaker_reset_ms": 5000}
    shipping = {"url": "http://shipping.test/s/{workflow_id}", "protection": protection}
    async with aggregator(network, clock, participants={"shipping": shipping}) as agg:
        for i in range(3):
            await agg.status(f"o-{i}")
        assert agg.breaker_states()["shipping"] == "open"
        refused = await agg.status("o-9")
        assert network.calls("shipping") == 3
        error = refused.participants["shipping"].error
        assert error is not None and error.kind == ErrorKind.CIRCUIT_OPEN
        clock.advance(5)
        network.set("shipping", NOT_FOUND)
        await agg.status("o-10")
        assert agg.breaker_states()["shipping"] == "closed"
    assert network.calls("shipping") == 4


async def test_failing_calls_answered_by_the_same_stale_part_share_one_rendering() -> None:
    """With the circuit still closed, each request asks and fails the same way: the
    same stale part stands in, and the answer made of it is not judged and
    rendered again."""
    clock = ManualClock()
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved", shipping="in_transit")
    protection = {"breaker_threshold": 100, "retry": False}
    shipping = {"url": "http://shipping.test/s/{workflow_id}", "protection": protection}
    async with aggregator(network, clock, participants={"shipping": shipping}) as agg:
        await agg.status("o-1")
        clock.advance(3)  # past the time to live: every answer asks shipping again
        network.set("shipping", HTTP_503)
        await agg.answer("o-1")  # the others fetched again, live
        clock.advance(0.5)
        first = await agg.answer("o-1")
        clock.advance(0.5)
        second = await agg.answer("o-1")
    assert network.calls("shipping") == 4
    assert first.parts["shipping"] is second.parts["shipping"]
    assert first.parts["shipping"].source == Source.STALE
    assert first.rendering is second.rendering


async def test_an_outage_is_answered_from_the_same_stale_part_without_a_call() -> None:
    """While the circuit is open, each answer shows the very same stale part, so the
    answer is rendered once for the outage rather than once a request."""
    clock = ManualClock()
    network = FakeNetwork()
    all_states(network, "o-1", payment="captured", inventory="reserved", shipping="in_transit")
    protection = {"breaker_threshold": 1, "breaker_reset_ms": 5000}
    shipping = {"url": "http://shipping.test/s/{workflow_id}", "protection": protection}
    async with aggregator(network, clock, participants={"shipping": shipping}) as agg:
        await agg.status("o-1")
        clock.advance(3)  # past the time to live: the next answer asks again
        network.set("shipping", HTTP_503)
        failed = await agg.answer("o-1")
        first = await agg.answer("o-1")
        clock.advance(1)
        second = await agg.answer("o-1")
        shown = second.status().participants["shipping"]
        calls_during_outage = network.calls("shipping")
        stale_served = agg.stats()["shipping"].stale_served
        clock.advance(4)  # the breaker lets a probe through, which finds shipping back
        network.set("shipping", ok("shipping", "o-1", "delivered", version=2))
        back = (await agg.answer("o-1")).status().participants["shipping"]
    assert failed.parts["shipping"].error is not None
    assert failed.parts["shipping"].error.kind == ErrorKind.HTTP_STATUS
    assert first.parts["shipping"] is second.parts["shipping"]
    assert first.rendering is second.rendering
    assert shown.source == Source.STALE and shown.state == "in_transit"
    assert shown.error is not None and shown.error.kind == ErrorKind.CIRCUIT_OPEN
    assert shown.age_ms == 4000
    assert stale_served == 3 and calls_during_outage == 2
    assert back.source == Source.LIVE and back.state == "delivered"
    assert network.calls("shipping") == 3


async def test_a_breaker_closing_ends_the_stand_in_at_once() -> None:
    """A call started before the circuit opened succeeds: the breaker closes, and
    the next answer asks again instead of showing the stand-in until the reset."""
    clock = ManualClock()
    release = asyncio.Event()
    shipping_up = False

    async def shipping(request: OutboundRequest) -> TransportResponse:
        workflow_id = request.url.rsplit("/", 1)[1]
        if workflow_id == "o-2":
            await release.wait()
        elif not shipping_up:
            return HTTP_503
        return ok("shipping", workflow_id, "in_transit")

    network = FakeNetwork({"shipping": shipping})
    all_states(network, "o-1", payment="captured", inventory="reserved")
    protection = {"breaker_threshold": 1, "breaker_reset_ms": 60_000}
    url = "http://shipping.test/s/{workflow_id}"
    participants = {"shipping": {"url": url, "protection": protection}}
    async with aggregator(network, clock, participants=participants) as agg:
        slow = asyncio.create_task(agg.status("o-2"))
        await network.received(3)
        await agg.status("o-1")  # fails: the circuit opens
        refused = await agg.status("o-1")
        shipping_up = True
        release.set()
        await slow  # the earlier call succeeds and closes the breaker
        after = await agg.status("o-1")
    assert refused.participants["shipping"].error is not None
    assert refused.participants["shipping"].error.kind == ErrorKind.CIRCUIT_OPEN
    assert after.participants["shipping"].source == Source.LIVE


async def test_a_stalled_participant_times_out_and_the_others_answer() -> None:
    network = FakeNetwork({"shipping": forever})
    all_states(network, "o-1", payment="captured", inventory="reserved")
    shipping = {
        "url": "http://shipping.test/s/{workflow_id}",
        "timeout_ms": 20,
        "protection": {"retry_backoff_ms": 10},
    }
    async with aggregator(network, participants={"shipping": shipping}) as agg:
        status = await agg.status("o-1")
    part = status.participants["shipping"]
    assert part.outcome == Outcome.UNAVAILABLE and part.error is not None
    assert part.error.kind == ErrorKind.TIMEOUT and part.error.detail == "no answer within 20 ms"
    assert status.status == "stock_reserved" and not status.complete


async def test_a_full_bulkhead_degrades_the_part_within_the_deadline() -> None:
    network = FakeNetwork({"shipping": forever})
    shipping = {
        "url": "http://shipping.test/s/{workflow_id}",
        "timeout_ms": 30,
        "protection": {"max_concurrency": 1, "retry_backoff_ms": 10},
    }
    async with aggregator(network, participants={"shipping": shipping}) as agg:
        first, second = await asyncio.gather(agg.status("o-1"), agg.status("o-2"))
    kinds = {s.participants["shipping"].error.kind for s in (first, second)}  # type: ignore[union-attr]
    assert kinds == {ErrorKind.TIMEOUT, ErrorKind.BULKHEAD_FULL}
    assert network.calls("shipping") == 1


async def test_a_throttled_call_waits_no_longer_than_the_deadline() -> None:
    network = FakeNetwork()
    # Every participant's timeout within the short deadline, as the settings require.
    quick = {"timeout_ms": 30, "protection": {"retry": False}}
    participants = {name: {"url": url, **quick} for name, url in URLS.items()}
    participants["payment"]["protection"] = {"rate_limit": 1, "retry": False}
    async with aggregator(network, deadline_ms=30, participants=participants) as agg:
        await agg.status("o-1")
        throttled = await agg.status("o-2")
    error = throttled.participants["payment"].error
    assert error is not None and error.kind == ErrorKind.THROTTLED
    assert network.calls("payment") == 1


async def test_a_crashing_transport_is_an_unavailable_part() -> None:
    async def broken(_: OutboundRequest) -> TransportResponse:
        raise RuntimeError("boom")

    network = FakeNetwork({"payment": broken})
    async with aggregator(network) as agg:
        status = await agg.status("o-1")
    error = status.participants["payment"].error
    assert error is not None and error.detail == "transport error"


@pytest.mark.parametrize(
    ("answer", "kind", "detail"),
    [
        (TransportResponse(200, JSON, b"{not json"), ErrorKind.INVALID_JSON, "Invalid JSON"),
        (
            TransportResponse(200, JSON, ok("payment", "o-1", "teleported").body),
            ErrorKind.SCHEMA_VIOLATION,
            "state: Input should be 'pending'",
        ),
        (
            TransportResponse(200, JSON, ok("payment", "o-2", "captured").body),
            ErrorKind.SCHEMA_VIOLATION,
            "answered for 'o-2', asked for 'o-1'",
        ),
        (
            TransportResponse(200, {"content-type": "text/html"}, b"<html>"),
            ErrorKind.UNEXPECTED_RESPONSE,
            "'text/html' is not JSON",
        ),
        (
            TransportResponse(302, {"location": "http://x"}, b""),
            ErrorKind.UNEXPECTED_RESPONSE,
            "redirect",
        ),
        (TransportResponse(400, JSON, b"{}"), ErrorKind.UNEXPECTED_RESPONSE, "HTTP 400"),
        (
            TransportResponse(200, {**JSON, "content-encoding": "gzip"}, b"\x1f\x8b"),
            ErrorKind.UNEXPECTED_RESPONSE,
            "content-encoding",
        ),
    ],
)
async def test_answers_outside_the_contract_are_invalid_parts(
    answer: TransportResponse, kind: ErrorKind, detail: str
) -> None:
    network = FakeNetwork({"payment": answer})
    all_states(network, "o-1", shipping="delivered")
    async with aggregator(network) as agg:
        status = await agg.status("o-1")
    part = status.participants["payment"]
    assert part.outcome == Outcome.INVALID and part.source is None and part.error is not None
    assert part.error.kind == kind and detail in part.error.detail
    assert status.status == "delivered"


async def test_invalid_ids_never_reach_a_participant() -> None:
    network = FakeNetwork()
    async with aggregator(network) as agg:
        for bad in ("../admin", "a/b", "x?y=1", "%2e%2e", "a\x00", "x" * 1_000_000):
            with pytest.raises(InvalidWorkflowId):
                await agg.status(bad)
        with pytest.raises(InvalidWorkflowId):
            await agg.status_many(["o-1", "../etc"])
    assert network.requests == []


async def test_status_many_keeps_order_and_bounds_concurrency() -> None:
    in_flight = peak = 0

    async def counted(request: OutboundRequest) -> TransportResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        workflow_id = request.url.rsplit("/", 1)[1]
        return ok("payment", workflow_id, "captured")

    network = FakeNetwork({"payment": counted})
    ids = [f"o-{i}" for i in range(40)]
    async with aggregator(network, max_concurrent_statuses=4) as agg:
        statuses = await agg.status_many(ids)
    assert [s.workflow_id for s in statuses] == ids
    assert all(s.status == "paid" for s in statuses)
    assert peak <= 4


async def test_used_outside_async_with() -> None:
    agg = aggregator(FakeNetwork())
    with pytest.raises(NotOpen):
        await agg.status("o-1")


async def test_closing_cancels_calls_in_flight() -> None:
    network = FakeNetwork(dict.fromkeys(("payment", "inventory", "shipping"), forever))
    async with aggregator(network, deadline_ms=60_000) as agg:
        pending = asyncio.create_task(agg.status("o-1"))
        await network.received(3)
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task())


TRAVEL = """
workflow = "travel"

[participants.flight]
url = "http://flight.test/bookings/{workflow_id}"
[participants.hotel]
url = "http://hotel.test/stays/{workflow_id}"

[workflows.travel.participants]
flight = { states = ["requested", "booked", "cancelled"], terminal = ["cancelled"] }
hotel = { states = ["requested", "booked", "cancelled"] }

[[workflows.travel.rules]]
status = "booked"
when = { flight = ["booked"], hotel = ["booked"] }
[[workflows.travel.rules]]
status = "cancelled"
when = { flight = ["cancelled"] }
[[workflows.travel.rules]]
status = "cancelled"
when = { hotel = ["cancelled"] }
[[workflows.travel.rules]]
status = "booking"
when = { flight = ["requested", "booked", "absent"] }
[[workflows.travel.rules]]
status = "booking"
when = { hotel = ["requested", "booked"] }

[[workflows.travel.anomalies]]
code = "hotel_without_flight"
message = "the hotel is booked but the flight was cancelled"
when = { hotel = ["booked"], flight = ["cancelled"] }
"""


def travel_answer(state: str, **extra: object) -> TransportResponse:
    import json

    payload = {
        "workflow_id": "trip-1",
        "state": state,
        "version": 2,
        "updated_at": "2026-01-01T10:00:00+01:00",
        **extra,
    }
    return TransportResponse(200, JSON, json.dumps(payload).encode())


async def test_a_workflow_declared_only_in_configuration() -> None:
    network = FakeNetwork(
        {"flight": travel_answer("cancelled", seat="12A"), "hotel": travel_answer("booked")}
    )
    async with StatusAggregator(Settings.from_toml(TRAVEL), transport=network) as agg:
        status = await agg.status("trip-1")
        network.set("hotel", travel_answer("checked_in"))
    assert status.workflow == "travel"
    assert status.status == "cancelled" and status.complete
    assert [a.code for a in status.anomalies] == ["hotel_without_flight"]
    flight = status.participants["flight"]
    assert flight.view is not None and flight.view["seat"] == "12A"  # passed through

    async with StatusAggregator(Settings.from_toml(TRAVEL), transport=network) as agg:
        unknown_state = await agg.status("trip-1")
    hotel = unknown_state.participants["hotel"]
    assert hotel.outcome == Outcome.INVALID and hotel.error is not None
    assert "unknown state 'checked_in'" in hotel.error.detail
    assert unknown_state.derived_from == ("flight",)


async def test_a_caller_arriving_as_a_call_is_cancelled_gets_a_call_of_its_own() -> None:
    """The first caller goes away and its call is cancelled; a second caller asking
    for the same part before the cancelled call has ended must not join it."""
    first_call = asyncio.Event()

    async def first_hangs(request: OutboundRequest) -> TransportResponse:
        if not first_call.is_set():
            first_call.set()
            await asyncio.Event().wait()
        return ok("payment", "o-1", "captured")

    network = FakeNetwork({"payment": first_hangs})
    async with aggregator(network) as agg:
        leaving = asyncio.create_task(agg.status("o-1"))
        await first_call.wait()
        leaving.cancel()
        await asyncio.sleep(0)  # the leaving caller abandons its call: cancel() is pending
        status = await agg.status("o-1")  # asks before the cancelled call has ended
    assert leaving.cancelled()
    assert status.participants["payment"].outcome is Outcome.OK
    assert network.calls("payment") == 2


async def test_calls_given_up_by_their_callers_never_count_against_the_breaker() -> None:
    network = FakeNetwork({"payment": forever})
    payment = {"url": URLS["payment"], "protection": {"breaker_threshold": 1}}
    async with aggregator(network, participants={"payment": payment}) as agg:
        for n in range(3):
            asking = asyncio.create_task(agg.status(f"o-{n}"))
            await network.received(3 * (n + 1))
            asking.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asking
        assert agg.breaker_states()["payment"] is BreakerState.CLOSED
