"""Tenant isolation, as a property over random interleavings of who asks for what."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.testing import ManualClock
from tests.faults.helpers import fault_settings
from tests.faults.participant import TENANTS, FaultyParticipant
from tests.gateway.harness import running_gateway

KEYS = {f"key-{tenant}-0123456789abcdef": tenant for tenant in TENANTS}
CREDENTIALS = [
    *({"Authorization": f"Bearer {key}"} for key in KEYS),
    {"X-API-Key": next(iter(KEYS))},  # the first tenant again, by the other header
    {"Authorization": "Bearer not-a-known-key-0123456789"},
    {},
]
# The first tenant's credentials, by position in CREDENTIALS; None: refused.
WHO = [TENANTS[0], TENANTS[1], TENANTS[2], TENANTS[0], None, None]
IDS = ["normal.1", "normal.2", "no-store.1", "no-store.2", "set-cookie.1", "set-cookie.2"]

# Every request is made twice, the second time somewhere later in the sequence, so
# that what may and may not come from the cache is always put to the test.
requests = st.lists(
    st.tuples(st.integers(0, len(CREDENTIALS) - 1), st.sampled_from(IDS)), min_size=1, max_size=12
).flatmap(lambda steps: st.permutations(steps + steps))


async def scenario(
    server: FaultyParticipant, steps: list[tuple[int, str]], cache: dict[str, object]
) -> None:
    settings_ = fault_settings(
        server,
        timeout_ms=2_000,
        gateway={"auth": {"enabled": True, "keys": KEYS}},
        cache=cache,
    )
    # By name: a cookie jar would keep a cookie for a host name, never for an address.
    participants = {
        name: part.model_copy(update={"url": part.url.replace("127.0.0.1", "localhost")})
        for name, part in settings_.participants.items()
    }
    settings_ = settings_.model_copy(update={"participants": participants})
    asked: set[tuple[str, str]] = set()
    async with running_gateway(settings_, clock=ManualClock()) as gw:
        for credential, workflow_id in steps:
            before = {name: len(server.to(name)) for name in ("payment", "shipping")}
            # The client's own cookie and tenant header must change nothing.
            headers = {**CREDENTIALS[credential], "Cookie": "c=1", "X-Tenant-ID": TENANTS[1]}
            response = await gw.client.get(f"/workflows/{workflow_id}/status", headers=headers)
            body = await response.read()
            sent = {name: len(server.to(name)) - before[name] for name in before}
            tenant = WHO[credential]
            assert "Set-Cookie" not in response.headers
            if tenant is None:
                assert response.status == 401 and sent == {"payment": 0, "shipping": 0}
                continue
            assert response.status == 200
            parts = json.loads(body)["participants"]
            # Each part says, in its version, the tenant it was fetched for.
            assert {p["view"]["version"] for p in parts.values()} == {1 + TENANTS.index(tenant)}
            again = (tenant, workflow_id) in asked
            asked.add((tenant, workflow_id))
            assert parts["payment"]["source"] == ("cache" if again else "live")
            assert sent["payment"] == (0 if again else 1)
            if workflow_id.startswith("no-store"):
                assert parts["shipping"]["source"] == "live" and sent["shipping"] == 1
            else:
                assert parts["shipping"]["source"] == parts["payment"]["source"]
    for request in server.received:
        assert request.header("Cookie") is None
        assert request.header("X-Tenant-ID") in TENANTS


@settings(
    max_examples=60,
    deadline=None,
    # One participant server serves every example; each example has a fresh gateway
    # and measures what the server received while it ran.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@pytest.mark.parametrize("backend", ["memory", "valkey"])
@given(steps=requests)
def test_a_part_fetched_for_one_tenant_is_never_served_to_another(
    faulty: FaultyParticipant,
    steps: list[tuple[int, str]],
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    cache: dict[str, object] = {}
    if backend == "valkey":  # shared: a prefix of this example's own, as a fresh gateway
        server = request.getfixturevalue("valkey")
        cache = {"backend": f"valkey://127.0.0.1:{server.port}/0", "prefix": secrets.token_hex(6)}
    asyncio.run(scenario(faulty, steps, cache))
