"""A participant that misbehaves in every way we know: the gateway keeps answering.

The gateway runs on 127.0.0.1 (in this process, or as its own process where its
memory is measured) and asks the faulty participant of tests/faults/participant.py.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp
import jsonschema
import pytest

from aggregator.gateway import GATEWAY
from contracts import ErrorKind, Outcome, Source
from tests.faults.helpers import (
    NO_BREAKER,
    TIMEOUT_MS,
    fault_settings,
    fetch_all,
    shipping_part,
)
from tests.faults.participant import BROKEN, MODES, ODD, FaultyParticipant
from tests.faults.process import gateway_process
from tests.gateway.harness import running_gateway

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "contracts" / "schemas" / "workflow-status.v1.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
# What the faulty part says for each mode, when it is not standing in stale.
KINDS = {
    "stall-accept": ErrorKind.TIMEOUT,
    "stall-headers": ErrorKind.TIMEOUT,
    "drip": ErrorKind.TIMEOUT,
    "reset-headers": ErrorKind.CONNECTION,
    "reset-body": ErrorKind.CONNECTION,
    "garbage": ErrorKind.UNEXPECTED_RESPONSE,
    "invalid-json": ErrorKind.INVALID_JSON,
    "wrong-schema": ErrorKind.SCHEMA_VIOLATION,
    "html": ErrorKind.UNEXPECTED_RESPONSE,
    "huge": ErrorKind.BODY_TOO_LARGE,
    "huge-declared": ErrorKind.BODY_TOO_LARGE,
    "gzip-bomb": ErrorKind.UNEXPECTED_RESPONSE,
    "many-headers": ErrorKind.UNEXPECTED_RESPONSE,
    "huge-header": ErrorKind.UNEXPECTED_RESPONSE,
    "redirect": ErrorKind.UNEXPECTED_RESPONSE,
}


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_garbage_in_every_mode_never_breaks_an_answer(faulty: FaultyParticipant) -> None:
    """Thousands of requests, each mode many times: zero 5xx, every answer valid
    against the published schema, the faulty part marked, the others current."""
    paths = [f"/workflows/{mode}.{n}/status" for n in range(110) for mode in MODES]
    paths += [f"/workflows/{mode}.{n}/status" for n in range(5) for mode in MODES]  # cached now
    # Thousands of answers, 50 MB streams among them: time to spare for the good ones.
    async with running_gateway(fault_settings(faulty, timeout_ms=600)) as gw:
        results = await fetch_all(gw.client, paths, concurrency=48)
    assert len(results) >= 2000
    assert not [r for r in results if r[1] >= 500]
    seen_kinds: dict[str, set[str]] = {}
    for path, status, _, body, _ in results:
        mode = path.split("/")[2].split(".")[0]
        assert status == 200, (path, status, body[:300])
        answer = json.loads(body)
        VALIDATOR.validate(answer)
        for name in ("payment", "inventory"):
            part = answer["participants"][name]
            assert (part["outcome"], part["source"]) in (("ok", "live"), ("ok", "cache"))
        shipping = answer["participants"]["shipping"]
        if mode in BROKEN:
            assert shipping["outcome"] in (Outcome.INVALID, Outcome.UNAVAILABLE), path
            assert shipping["source"] in (None, Source.STALE), path
            seen_kinds.setdefault(mode, set()).add(shipping["error"]["kind"])
            assert not answer["complete"]
        else:
            assert (shipping["outcome"], shipping["source"]) in (("ok", "live"), ("ok", "cache")), (
                path,
                shipping["error"],
            )
    # Each mode is told apart by its own kind; on a machine busy enough, the deadline
    # may end a call before the participant even gets to misbehave.
    assert set(seen_kinds) == set(BROKEN)
    for mode, kinds in seen_kinds.items():
        assert KINDS[mode] in kinds and kinds <= {KINDS[mode], ErrorKind.TIMEOUT}, (mode, kinds)


@pytest.fixture
def collector_paused() -> Iterator[None]:
    """No full collection of this test process's heap (pytest's, Hypothesis's...) in
    the middle of a latency measurement; the gateway's own processes tune theirs
    (aggregator/gateway/_collector.py)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("mode", ["stall-accept", "stall-headers", "drip"])
async def test_a_stall_ends_at_the_participant_s_timeout_and_leaves_nothing_behind(
    faulty: FaultyParticipant, mode: str
) -> None:
    """Every request ends because the stalled call reached its own timeout, not the
    request's deadline (20 times longer) nor never; how close to the timeout it ends
    is a latency, measured by ``make bench``, not here."""
    async with running_gateway(fault_settings(faulty)) as gw:
        await fetch_all(gw.client, ["/workflows/normal.warm/status"], 1)
        paths = [f"/workflows/{mode}.{n}/status" for n in range(120)]
        results = await fetch_all(gw.client, paths, concurrency=24)
        aggregator = gw.app[GATEWAY].aggregator
        for _ in range(1_000):  # until the gateway has closed the stalled connections
            if faulty.open_to("shipping") == 0:
                break
            await asyncio.sleep(0.01)
        calls = [
            t for t in asyncio.all_tasks() if not t.done() and t.get_name().startswith("call to ")
        ]
        in_flight = [
            len(aggregator.pipeline(name).in_flight()) for name in aggregator.definition.by_name
        ]
    deadline = gw.app[GATEWAY].settings.deadline_ms / 1000
    assert all(status == 200 for _, status, *_ in results)
    for *_, body, seconds in results:
        error = shipping_part(body)["error"]
        assert error == {"kind": "timeout", "detail": f"no answer within {TIMEOUT_MS} ms"}
        assert TIMEOUT_MS / 1000 <= seconds < deadline
    assert calls == [] and in_flight == [0, 0, 0]
    assert faulty.open_to("shipping") == 0


async def test_oversized_bodies_and_gzip_bombs_cost_no_memory(
    faulty: FaultyParticipant, tmp_path: Path
) -> None:
    """The gateway's own process: its peak resident memory grows by less than 64 MB."""
    async with (
        gateway_process(tmp_path, faulty.urls()) as gateway,
        aiohttp.ClientSession(gateway.url) as client,
    ):
        await fetch_all(client, [f"/workflows/normal.{n}/status" for n in range(50)], 10)
        before = gateway.peak_rss()
        paths = [
            f"/workflows/{mode}.{n}/status"
            for n in range(40)
            for mode in ("huge", "huge-declared", "gzip-bomb")
        ]
        results = await fetch_all(client, paths, concurrency=20)
        grown = gateway.peak_rss() - before
    assert grown < 64 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.1f} MiB"
    for path, status, _, body, _ in results:
        error = shipping_part(body)["error"]
        assert status == 200
        if "gzip" in path:
            assert error == {
                "kind": "unexpected_response",
                "detail": "unsupported content-encoding 'gzip'",
            }
        else:
            assert error == {"kind": "body_too_large", "detail": "body larger than 262144 bytes"}


async def test_resets_are_retried_once_within_the_budget(faulty: FaultyParticipant) -> None:
    """A participant resetting every connection before its headers gets at most one
    retry per call, and never more than 1.2 calls per client request plus the reserve."""
    faulty.faulty.clear()
    faulty.modes["shipping"] = "reset-headers"
    count = 300
    budget = {**NO_BREAKER, "retry_budget_ratio": 0.2, "retry_budget_min": 10}
    # Resets come at once: a timeout with room to spare on a busy machine, so that
    # every call ends in its reset, never in a timeout.
    settings = fault_settings(faulty, shipping=budget, timeout_ms=2_000)
    async with running_gateway(settings) as gw:
        results = await fetch_all(
            gw.client, [f"/workflows/o-{n}/status" for n in range(count)], concurrency=8
        )
    calls = faulty.to("shipping")
    per_id = {r.target: sum(1 for c in calls if c.target == r.target) for r in calls}
    assert all(shipping_part(body)["error"]["kind"] == "connection" for *_, body, _ in results)
    assert max(per_id.values()) <= 2
    assert count < len(calls) <= 1.2 * count + 10
    assert {c.method for c in calls} == {"GET"}


async def test_a_reset_mid_body_is_not_retried(faulty: FaultyParticipant) -> None:
    """The request reached the participant's logic: asking again is not ours to decide."""
    faulty.faulty.clear()
    faulty.modes["shipping"] = "reset-body"
    async with running_gateway(fault_settings(faulty)) as gw:
        await fetch_all(gw.client, [f"/workflows/o-{n}/status" for n in range(20)], 4)
    assert len(faulty.to("shipping")) == 20


def test_the_modes_cover_the_issue() -> None:
    assert set(KINDS) == set(BROKEN) and set(ODD) == {"set-cookie", "no-store"}
