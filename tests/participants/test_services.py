"""Each reference participant's query API, states, faults and admin switch."""

from __future__ import annotations

import asyncio
from collections import defaultdict

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


async def watch(
    run: Choreography, ids: list[str], seen: dict[str, set[str]], client: aiohttp.ClientSession
) -> None:
    """Ask every participant about every order until all have reached a final state."""
    final = {"payment": {"failed", "refunded"}, "shipping": {"delivered"}}
    while True:
        finished = 0
        for workflow_id in ids:
            states = {}
            for name, template in run.urls.items():
                url = template.replace("{workflow_id}", workflow_id)
                async with client.get(url) as response:
                    if response.status == 404:
                        continue
                    assert response.status == 200
                    assert response.content_type == "application/json"
                    view = BUILTIN_VIEWS[name].model_validate_json(await response.read())
                    assert view.workflow_id == workflow_id
                    seen[name].add(view.state)
                    states[name] = view.state
            if states.get("payment") in final["payment"] or states.get("shipping") == "delivered":
                finished += 1
        if finished == len(ids):
            return


async def test_every_reachable_state_is_served_within_the_contract() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    async with choreography(seed=5, min_delay=0.03, max_delay=0.06, duplicate_rate=0.0) as run:
        ids = [await run.place_order() for _ in range(20)]
        outcomes = {run.config.chance.expected_outcome(i) for i in ids}
        assert outcomes == {"delivered", "compensated", "payment_failed"}  # the seed covers all
        async with aiohttp.ClientSession() as client:
            await asyncio.wait_for(watch(run, ids, seen, client), 30)
    assert dict(seen) == REACHABLE


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
