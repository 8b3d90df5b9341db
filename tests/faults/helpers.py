"""What the fault tests share: the gateway's settings against the faulty
participant, and many requests at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

import aiohttp

from aggregator import Settings
from tests.faults.participant import FaultyParticipant
from tests.helpers import settings as make_settings

TIMEOUT_MS = 150
NO_BREAKER = {"breaker_threshold": 1_000_000}


def fault_settings(
    server: FaultyParticipant,
    *,
    shipping: dict[str, Any] | None = None,
    timeout_ms: int = TIMEOUT_MS,
    **overrides: Any,
) -> Settings:
    """A short timeout for the faulty participant (shipping), with ``shipping`` as its
    protection; the healthy ones get time to spare on a busy machine."""
    participants: dict[str, Any] = {n: {"url": u} for n, u in server.urls().items()}
    for name in ("payment", "inventory"):
        participants[name]["timeout_ms"] = 2_000
    participants["shipping"].update(timeout_ms=timeout_ms, protection=shipping or NO_BREAKER)
    return make_settings(participants=participants, deadline_ms=3_000, **overrides)


async def fetch_all(
    client: aiohttp.ClientSession, paths: Iterable[str], concurrency: int
) -> list[tuple[str, int, dict[str, str], bytes, float]]:
    """(path, status, headers, body, seconds) for each path, ``concurrency`` at a time."""
    limit = asyncio.Semaphore(concurrency)

    async def one(path: str) -> tuple[str, int, dict[str, str], bytes, float]:
        async with limit:
            started = time.perf_counter()
            async with client.get(path) as response:
                body = await response.read()
                elapsed = time.perf_counter() - started
                return path, response.status, dict(response.headers), body, elapsed

    return list(await asyncio.gather(*(one(path) for path in paths)))


def shipping_part(body: bytes) -> dict[str, Any]:
    part: dict[str, Any] = json.loads(body)["participants"]["shipping"]
    return part
