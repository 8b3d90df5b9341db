"""Our caching headers keep the participants' and the tenants' privacy: what a
participant said not to store is not stored downstream either, and no tenant ever
gets another's answer or a 304 on another's validator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.testing import ManualClock
from tests.gateway.harness import gateway_settings, running_gateway
from tests.helpers import body
from tests.loopback import Behaviour, LoopbackParticipants, answer, healthy

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
AUTH = {"auth": {"enabled": True, "keys": {KEY_A: "tenant-a", KEY_B: "tenant-b"}}}
AS_A = {"Authorization": f"Bearer {KEY_A}"}
AS_B = {"X-API-Key": KEY_B}


def saying(cache_control: str, *, cookie: bool = False) -> Behaviour:
    async def respond(request: web.Request) -> web.StreamResponse:
        response = await answer("payment", "captured")(request)
        response.headers["Cache-Control"] = cache_control
        if cookie:
            response.set_cookie("session", "secret")
        return response

    return respond


@pytest.mark.parametrize(
    ("said", "cookie", "ours"),
    [
        ("no-store", False, "no-store"),
        ("private", False, "private, max-age=2"),
        ("Private, No-Store", True, "no-store"),
        ("max-age=60", False, "max-age=2"),
        ("max-age=1", False, "max-age=1"),
        ("no-cache", False, "max-age=0"),
    ],
)
async def test_the_answer_is_kept_downstream_no_longer_than_its_participant_allows(
    participants: LoopbackParticipants, said: str, cookie: bool, ours: str
) -> None:
    healthy(participants)
    participants.behaviours["payment"] = saying(said, cookie=cookie)
    async with running_gateway(gateway_settings(participants), clock=ManualClock()) as gw:
        response = await gw.client.get("/workflows/o-1/status")
        batch = await gw.client.post("/workflows/status:batch", json={"ids": ["o-1", "o-2"]})
    assert response.status == 200 and batch.status == 200
    assert response.headers["Cache-Control"] == ours
    assert "Set-Cookie" not in response.headers
    expected_batch = ours if ours in ("no-store",) else None
    if ours.startswith("private"):
        expected_batch = "private"
    assert batch.headers.get("Cache-Control") == expected_batch


async def test_a_downstream_cache_never_keeps_an_answer_past_the_participant_s_max_age(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    participants.behaviours["payment"] = saying("max-age=1")
    clock = ManualClock()
    kept_for = {}
    async with running_gateway(gateway_settings(participants), clock=clock) as gw:
        fetched = clock.now
        await gw.client.get("/workflows/o-1/status")
        for elapsed in (0.3, 0.6, 0.999):
            clock.advance(fetched + elapsed - clock.now)
            response = await gw.client.get("/workflows/o-1/status")
            age = int(response.headers["Age"])
            max_age = int(response.headers["Cache-Control"].removeprefix("max-age="))
            kept_for[elapsed] = max_age - age  # what a cache receiving it now may keep
    assert all(kept <= 1 - elapsed for elapsed, kept in kept_for.items()), kept_for


async def test_a_batch_follows_its_strictest_entry(participants: LoopbackParticipants) -> None:
    healthy(participants)

    async def by_id(request: web.Request) -> web.StreamResponse:
        said = {"o-private": "private", "o-secret": "no-store"}
        workflow_id = request.path.rsplit("/", 1)[1]
        return await saying(said.get(workflow_id, "max-age=60"))(request)

    participants.behaviours["payment"] = by_id
    async with running_gateway(gateway_settings(participants), clock=ManualClock()) as gw:
        headers = {}
        for ids in (["o-1"], ["o-1", "o-private"], ["o-private", "o-secret", "o-1"]):
            response = await gw.client.post("/workflows/status:batch", json={"ids": ids})
            headers[len(ids)] = response.headers.get("Cache-Control")
    assert headers == {1: None, 2: "private", 3: "no-store"}


async def test_authenticated_answers_are_private_and_vary_by_credential(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    async with running_gateway(
        gateway_settings(participants, gateway=AUTH), clock=ManualClock()
    ) as gw:
        found = await gw.client.get("/workflows/o-1/status", headers=AS_A)
        revalidated = await gw.client.get(
            "/workflows/o-1/status", headers={**AS_A, "If-None-Match": found.headers["ETag"]}
        )
        missing = await gw.client.get("/workflows/o-1/status", headers={})
        invalid = await gw.client.get("/workflows/%20/status", headers=AS_A)
        batch = await gw.client.post("/workflows/status:batch", json={"ids": ["o"]}, headers=AS_A)
        health = await gw.client.get("/healthz")
    assert revalidated.status == 304
    for response in (found, revalidated, batch):
        assert response.headers["Cache-Control"].startswith("private"), response
    for response in (missing, invalid):  # problems are never stored anywhere
        assert response.headers["Cache-Control"] == "no-store", response
    for response in (found, revalidated, missing, invalid, batch):
        assert response.headers["Vary"] == "Authorization, X-API-Key", response
    assert found.headers["Cache-Control"] == "private, max-age=2"
    assert "Vary" not in health.headers


def per_tenant(field: str) -> Callable[[str], Behaviour]:
    """Each tenant gets the same state and version, and another value of ``field``."""

    def behaviour(participant: str) -> Behaviour:
        async def respond(request: web.Request) -> web.StreamResponse:
            workflow_id = request.path.rsplit("/", 1)[1]
            tenant = request.headers.get("X-Tenant-ID", "")
            extra: dict[str, Any] = {field: f"for {tenant}"}
            return web.Response(
                body=body(participant, workflow_id, "in_transit", **extra),
                content_type="application/json",
            )

        return respond

    return behaviour


# Who asks (0: tenant a, 1: tenant b), for which workflow, offering which tenant's
# last validator for it (None: none); the clock moves between some requests.
steps = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from(["o-1", "o-2"]),
        st.sampled_from([None, 0, 1]),
        st.sampled_from([0.0, 0.0, 1.5, 3.0]),
    ),
    min_size=2,
    max_size=14,
)


async def tenants_scenario(moves: list[tuple[int, str, int | None, float]]) -> None:
    server = LoopbackParticipants()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    healthy(server)
    server.behaviours["shipping"] = per_tenant("carrier")("shipping")
    clock = ManualClock()
    credentials = (AS_A, AS_B)
    names = ("tenant-a", "tenant-b")
    validators: dict[tuple[int, str], str] = {}
    try:
        async with running_gateway(gateway_settings(server, gateway=AUTH), clock=clock) as gw:
            for who, workflow_id, offered, later in moves:
                clock.advance(later)
                headers = dict(credentials[who])
                offer = None if offered is None else validators.get((offered, workflow_id))
                if offer is not None:
                    headers["If-None-Match"] = offer
                response = await gw.client.get(f"/workflows/{workflow_id}/status", headers=headers)
                etag = response.headers["ETag"]
                if response.status == 304:
                    # Only ever for exactly the representation this tenant gets.
                    assert offer == validators[(who, workflow_id)] == etag
                    continue
                assert response.status == 200
                shown = (await response.json())["participants"]["shipping"]["view"]
                assert shown["carrier"] == f"for {names[who]}"
                assert offer is None or offer != etag or offered == who
                validators[(who, workflow_id)] = etag
        for workflow_id in ("o-1", "o-2"):
            mine, theirs = validators.get((0, workflow_id)), validators.get((1, workflow_id))
            assert mine is None or theirs is None or mine != theirs
    finally:
        await runner.cleanup()


@settings(max_examples=40, deadline=None)
@given(moves=steps)
def test_tenants_never_get_each_other_s_body_or_a_304_on_each_other_s_validator(
    moves: list[tuple[int, str, int | None, float]],
) -> None:
    asyncio.run(tenants_scenario(moves))


async def test_a_validator_covers_the_view_s_content(participants: LoopbackParticipants) -> None:
    """Same state and version, another carrier: another ETag, and no 304."""
    healthy(participants)
    carrier = {"name": "parcelco"}

    async def shipping(request: web.Request) -> web.StreamResponse:
        workflow_id = request.path.rsplit("/", 1)[1]
        return web.Response(
            body=body("shipping", workflow_id, "in_transit", carrier=carrier["name"]),
            content_type="application/json",
        )

    participants.behaviours["shipping"] = shipping
    clock = ManualClock()
    async with running_gateway(gateway_settings(participants), clock=clock) as gw:
        first = await gw.client.get("/workflows/o-1/status")
        carrier["name"] = "fastpost"
        clock.advance(3)  # past the time to live: asked again
        again = await gw.client.get(
            "/workflows/o-1/status", headers={"If-None-Match": first.headers["ETag"]}
        )
    assert again.status == 200
    assert again.headers["ETag"] != first.headers["ETag"]
