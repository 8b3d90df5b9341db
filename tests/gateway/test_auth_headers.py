"""What reaches participants, who may ask, and whose cache is whose."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.harness import gateway_settings, running_gateway
from tests.loopback import LoopbackParticipants, healthy

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
AUTH = {"auth": {"enabled": True, "keys": {KEY_A: "tenant-a", KEY_B: "tenant-b"}}}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_only_our_own_headers_reach_participants(participants: LoopbackParticipants) -> None:
    healthy(participants)
    hostile = {
        "X-Request-ID": "client-req-1",
        "traceparent": TRACEPARENT,
        "Authorization": "Bearer client-secret",
        "Cookie": "session=abc",
        "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "evil.example",
        "X-Tenant-ID": "someone-else",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "hop",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "TE": "trailers",
    }
    async with running_gateway(gateway_settings(participants)) as gw:
        response = await gw.client.get("/workflows/order-1/status", headers=hostile)
    assert response.status == 200
    assert response.headers["X-Request-ID"] == "client-req-1"
    assert len(participants.received) == 3
    for request in participants.received:
        names = {name.lower() for name in request.headers}
        assert request.headers["X-Request-ID"] == "client-req-1"
        assert request.headers["traceparent"] == TRACEPARENT
        leaked = names & {
            "authorization",
            "cookie",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-tenant-id",
            "x-secret-hop",
            "proxy-authorization",
            "te",
        }
        assert leaked == set()


@pytest.mark.parametrize(
    ("offered", "echoed"),
    [("abc DEF", None), ("x" * 129, None), ("ok.id:1-2_3", "ok.id:1-2_3")],
)
async def test_unsafe_request_ids_are_replaced(
    participants: LoopbackParticipants, offered: str, echoed: str | None
) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        response = await gw.client.get("/workflows/o-1/status", headers={"X-Request-ID": offered})
    request_id = response.headers["X-Request-ID"]
    if echoed:
        assert request_id == echoed
    else:
        assert request_id != offered and len(request_id) == 32
    assert {r.headers["X-Request-ID"] for r in participants.received} == {request_id}


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-zz-yy-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case
        TRACEPARENT + "-00",  # version 00 has exactly four fields
    ],
)
async def test_an_invalid_traceparent_is_not_forwarded(
    participants: LoopbackParticipants, traceparent: str
) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        await gw.client.get("/workflows/o-1/status", headers={"traceparent": traceparent})
    assert len(participants.received) == 3
    assert all("traceparent" not in r.headers for r in participants.received)


async def test_authentication_off_by_default(participants: LoopbackParticipants) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        response = await gw.client.get("/workflows/o-1/status")
    assert response.status == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789"},
        {"Authorization": f"Basic {KEY_A}"},
        {"X-API-Key": "nope"},
        {"Authorization": "Bearer " + "k" * 600},
    ],
)
async def test_unauthenticated_or_unknown_is_401(
    participants: LoopbackParticipants, headers: dict[str, str]
) -> None:
    async with running_gateway(gateway_settings(participants, gateway=AUTH)) as gw:
        response = await gw.client.get("/workflows/o-1/status", headers=headers)
        batch = await gw.client.post(
            "/workflows/status:batch", json={"ids": ["o"]}, headers=headers
        )
        health = await gw.client.get("/healthz", headers=headers)
        body = await response.json(content_type=None)
    assert response.status == 401 and batch.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["type"].endswith(":unauthorized")
    assert health.status == 200
    assert participants.received == []


async def test_tenants_get_their_own_cache_and_header(participants: LoopbackParticipants) -> None:
    healthy(participants)
    async with running_gateway(gateway_settings(participants, gateway=AUTH)) as gw:
        a = {"Authorization": f"Bearer {KEY_A}", "X-Tenant-ID": "tenant-b"}
        first = await gw.client.get("/workflows/o-1/status", headers=a)
        again = await gw.client.get("/workflows/o-1/status", headers=a)
        b = await gw.client.get("/workflows/o-1/status", headers={"X-API-Key": KEY_B})
        b_body = await b.json()
    assert [first.status, again.status, b.status] == [200, 200, 200]
    assert b_body["participants"]["payment"]["source"] == "live"  # not A's cached part
    tenants = [r.headers["X-Tenant-ID"] for r in participants.requests_to("payment")]
    assert tenants == ["tenant-a", "tenant-b"]


async def test_the_contract_page_names_every_header_a_participant_receives(
    participants: LoopbackParticipants,
) -> None:
    """What ``contracts/README.md`` promises participant teams, against what they get."""
    page = (Path(__file__).parents[2] / "contracts" / "README.md").read_text()
    request_section = page[page.index("## The request") : page.index("## The answer")]
    answer_section = page[page.index("## The answer") : page.index("### Fields every")]
    healthy(participants)
    async with running_gateway(gateway_settings(participants, gateway=AUTH)) as gw:
        headers = {"Authorization": f"Bearer {KEY_A}", "traceparent": TRACEPARENT}
        await gw.client.get("/workflows/o-1/status", headers=headers)
    received = {name for request in participants.received for name in request.headers}
    assert received - {"Host"} >= {"X-Request-ID", "traceparent", "X-Tenant-ID"}
    for name in received - {"Host"}:
        assert f"`{name}`" in request_section, name
    for code in ("`404`", "`408`", "`425`", "`429`", "`5xx`", "`502`", "`504`"):
        assert code in answer_section, code
    for directive in ("no-store", "private", "no-cache", "max-age=N", "must-revalidate"):
        assert f"| `{directive}` |" in answer_section, directive
