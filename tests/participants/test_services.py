"""Each reference participant's query API, states, faults and admin switch."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp
import pytest

from contracts import BUILTIN_VIEWS
from participants import Choreography
from tests.participants.harness import choreography

REACHABLE = {
    "payment": {"pending", "authorized", "captured", "failed", "refunded"},
    "inventory": {"pending", "reserved", "out_of_stock", "released"},
    "shipping": {"pending", "scheduled", "in_transit", "delivered"},
}


# The last change of each outcome: delivered; payment failed; compensated (refunded, then released).
FINAL = {"payment": {"failed"}, "shipping": {"delivered"}, "inventory": {"released"}}


class Reader:
    """Reads each participant's every change through its query API, before the
    handler that made it goes on: a state that lasts a few milliseconds is read as
    surely as one that lasts, on a busy machine as on a quiet one."""

    def __init__(self, run: Choreography, client: aiohttp.ClientSession) -> None:
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.finished: set[str] = set()  # orders whose last change has been read
        self.expected: set[str] | None = None
        self.all_finished = asyncio.Event()
        self._run, self._client = run, client
        for name, service in run.services.items():
            service.store.change = self._reading(name, service.store.change)  # type: ignore[method-assign]

    def expect(self, ids: list[str]) -> None:
        self.expected = set(ids)
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.expected <= self.finished:
            self.all_finished.set()

    def _reading(self, name: str, change: Any) -> Any:
        one_at_a_time = asyncio.Lock()

        async def read_through(*args: Any, **kwargs: Any) -> Any:
            async with one_at_a_time:
                record = await change(*args, **kwargs)
                if record is not None:
                    await self._read(name, record.workflow_id, record.state)
                return record

        return read_through

    async def _read(self, name: str, workflow_id: str, state: str) -> None:
        url = self._run.urls[name].replace("{workflow_id}", workflow_id)
        async with self._client.get(url) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            view = BUILTIN_VIEWS[name].model_validate_json(await response.read())
        assert (view.workflow_id, view.state) == (workflow_id, state)
        self.seen[name].add(view.state)
        if state in FINAL.get(name, ()):
            self.finished.add(workflow_id)
            self._check()


async def test_every_reachable_state_is_served_within_the_contract() -> None:
    async with (
        choreography(seed=5, min_delay=0.03, max_delay=0.06, duplicate_rate=0.0) as run,
        aiohttp.ClientSession() as client,
    ):
        reader = Reader(run, client)
        ids = [await run.place_order() for _ in range(20)]
        outcomes = {run.config.chance.expected_outcome(i) for i in ids}
        assert outcomes == {"delivered", "compensated", "payment_failed"}  # the seed covers all
        reader.expect(ids)
        await asyncio.wait_for(reader.all_finished.wait(), 60)  # bounds a hang only
    assert dict(reader.seen) == REACHABLE


async def test_an_unknown_workflow_is_404() -> None:
    async with choreography() as run, aiohttp.ClientSession() as client:
        for template in run.urls.values():
            async with client.get(template.replace("{workflow_id}", "order-9999")) as response:
                assert response.status == 404
                assert response.content_type == "application/problem+json"


async def test_the_admin_endpoint_is_off_unless_enabled() -> None:
    async with (
        choreography() as run,
        aiohttp.ClientSession() as client,
        client.put(f"{run.base_urls['payment']}/_admin/faults", json={}) as response,
    ):
        assert response.status in (404, 405)


async def test_faults_slow_fail_and_darken_the_query_api() -> None:
    async with choreography(admin=True) as run, aiohttp.ClientSession() as client:
        base = run.base_urls["inventory"]
        query = run.urls["inventory"].replace("{workflow_id}", "order-1")
        async with client.put(f"{base}/_admin/faults", json={"error_rate": 1.0}) as response:
            assert response.status == 200
        async with client.get(query) as response:
            assert response.status == 503
        async with client.put(f"{base}/_admin/faults", json={"dark": True}) as response:
            assert (await response.json())["dark"] is True
        with pytest.raises(TimeoutError):
            async with client.get(query, timeout=aiohttp.ClientTimeout(total=0.1)):
                pass
        async with client.put(f"{base}/_admin/faults", json={"dark": False}) as response:
            assert response.status == 200
        async with client.get(query) as response:
            assert response.status == 404  # back, and answering normally
        async with client.put(f"{base}/_admin/faults", json={"latency_ms": -1}) as response:
            assert response.status == 400
        async with client.get(f"{base}/_admin/faults") as response:
            assert await response.json() == {"latency_ms": 0, "error_rate": 0.0, "dark": False}


async def test_participants_never_call_each_other() -> None:
    """Each service's code reaches the others only through events."""
    from pathlib import Path

    import participants

    root = Path(participants.__file__).parent
    for name in ("payment", "inventory", "shipping"):
        source = (root / f"{name}.py").read_text()
        others = {"payment", "inventory", "shipping"} - {name}
        assert not any(
            f"from .{other}" in source or f"import {other}" in source for other in others
        )
        assert "aiohttp.Client" not in source and "ClientSession" not in source
