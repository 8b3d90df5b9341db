"""Circuit breaker, bulkhead and staleness, seen from a participant on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

from aggregator.gateway import GATEWAY
from aggregator.testing import ManualClock
from tests.faults.helpers import fault_settings, fetch_all, shipping_part
from tests.faults.participant import FaultyParticipant
from tests.gateway.harness import Running, running_gateway


async def shipping_of(gw: Running, workflow_id: str) -> dict[str, Any]:
    response = await gw.client.get(f"/workflows/{workflow_id}/status")
    assert response.status == 200
    return shipping_part(await response.read())


async def test_the_breaker_opens_at_its_threshold_probes_and_closes(
    faulty: FaultyParticipant,
) -> None:
    faulty.faulty.clear()
    faulty.modes["shipping"] = "reset-body"  # unavailable, and not retried
    clock = ManualClock()
    breaker = {"breaker_threshold": 3, "breaker_reset_ms": 5_000, "breaker_probes": 2}
    async with running_gateway(fault_settings(faulty, shipping=breaker), clock=clock) as gw:
        closed = [await shipping_of(gw, f"a-{n}") for n in range(3)]
        sent_until_open = len(faulty.to("shipping"))
        while_open = [await shipping_of(gw, f"b-{n}") for n in range(10)]
        sent_while_open = len(faulty.to("shipping")) - sent_until_open

        clock.advance(4.999)
        still_open = await shipping_of(gw, "c-0")
        clock.advance(0.001)
        faulty.modes["shipping"] = "stall-accept"  # the probes hang until their timeout
        results = await fetch_all(gw.client, [f"/workflows/d-{n}/status" for n in range(6)], 6)
        half_open = Counter(shipping_part(body)["error"]["kind"] for *_, body, _ in results)
        probes = len(faulty.to("shipping")) - sent_until_open

        reopened = await shipping_of(gw, "e-0")
        clock.advance(5)
        faulty.modes["shipping"] = "normal"
        probe = await shipping_of(gw, "f-0")
        after = [await shipping_of(gw, f"g-{n}") for n in range(5)]
    assert [p["error"]["kind"] for p in closed] == ["connection"] * 3
    assert sent_until_open == 3
    assert {p["error"]["kind"] for p in while_open} == {"circuit_open"}
    assert sent_while_open == 0
    assert still_open["error"]["kind"] == "circuit_open"
    assert half_open == {"timeout": 2, "circuit_open": 4} and probes == 2
    assert reopened["error"]["kind"] == "circuit_open"
    assert (probe["outcome"], probe["source"]) == ("ok", "live")
    assert [(p["outcome"], p["source"]) for p in after] == [("ok", "live")] * 5
    assert len(faulty.to("shipping")) == 3 + 2 + 1 + 5


def bucket(metrics: str, participant: str, le: str) -> float:
    pattern = (
        r'aggregator_participant_call_duration_seconds_bucket\{le="'
        + re.escape(le)
        + r'",outcome="ok",participant="'
        + participant
        + r'"\} ([\d.]+)'
    )
    found = re.search(pattern, metrics)
    assert found is not None, (participant, le)
    return float(found.group(1))


async def test_the_bulkhead_holds_a_stalled_participant_to_its_limit(
    faulty: FaultyParticipant,
) -> None:
    """40 requests at once for a participant that never answers: at most 4 calls in
    flight to it; the healthy participants are not held up by it.

    The participant's count is read while all 40 calls are started and before any
    has timed out: at the timeouts, a call let through a freed slot can reach it
    before the closing connection it replaces has been seen to close."""
    bulkhead = {"breaker_threshold": 1_000_000, "max_concurrency": 4}
    async with running_gateway(fault_settings(faulty, shipping=bulkhead, timeout_ms=3_000)) as gw:
        paths = [f"/workflows/stall-accept.{n}/status" for n in range(40)]
        fetching = asyncio.create_task(fetch_all(gw.client, paths, concurrency=40))
        shipping = gw.app[GATEWAY].aggregator.pipeline("shipping")

        async def all_started() -> None:  # lasts until the timeouts, 3 s
            while len(shipping.in_flight()) < 40 or len(faulty.to("shipping")) < 4:  # noqa: ASYNC110 - no event tells it
                await asyncio.sleep(0.01)

        await asyncio.wait_for(all_started(), 30)
        peak, reached = faulty.peak["shipping"], len(faulty.to("shipping"))
        results = await fetching
        metrics = await (await gw.client.get("/metrics")).text()
    kinds = Counter(shipping_part(body)["error"]["kind"] for *_, body, _ in results)
    assert peak == 4 and reached == 4
    assert set(kinds) == {"timeout", "bulkhead_full"}
    for name in ("payment", "inventory"):
        parts = [json.loads(body)["participants"][name] for *_, body, _ in results]
        assert {(p["outcome"], p["source"]) for p in parts} == {("ok", "live")}
        # not held up by the stalled participant: every call well within its 3 s
        assert bucket(metrics, name, "1.0") == bucket(metrics, name, "+Inf") == 40


async def test_a_part_is_cache_then_stale_with_its_true_age_then_missing(
    faulty: FaultyParticipant,
) -> None:
    """Never live unless asked for this very answer; the age is the part's own."""
    faulty.faulty.clear()
    clock = ManualClock()
    seen: list[tuple[float, str, str | None, int | None, bool]] = []
    async with running_gateway(fault_settings(faulty), clock=clock) as gw:

        async def at(elapsed: float) -> None:
            clock.advance(elapsed - (clock() - start))
            before = len(faulty.to("shipping"))
            part = await shipping_of(gw, "o-1")
            asked = len(faulty.to("shipping")) > before
            seen.append((elapsed, part["outcome"], part["source"], part["age_ms"], asked))

        start = clock()
        await at(0)
        await at(1.0)
        await at(1.999)
        faulty.modes["shipping"] = "reset-body"
        await at(2.5)
        await at(30)
        await at(59.9)
        await at(60.5)
        faulty.modes["shipping"] = "normal"
        await at(61)
    assert seen == [
        (0, "ok", "live", 0, True),
        (1.0, "ok", "cache", 1000, False),
        (1.999, "ok", "cache", 1999, False),
        (2.5, "unavailable", "stale", 2500, True),
        (30, "unavailable", "stale", 30000, True),
        (59.9, "unavailable", "stale", 59900, True),
        (60.5, "unavailable", None, None, True),
        (61, "ok", "live", 0, True),
    ]
