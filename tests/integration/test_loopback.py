"""The library against real participant servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging

import pytest
from aiohttp import web

from aggregator import StatusAggregator
from contracts import ErrorKind, Outcome, Source, WorkflowStatus
from tests.helpers import body, settings
from tests.loopback import LoopbackParticipants, answer, healthy


async def status_of(
    server: LoopbackParticipants, workflow_id: str = "order-42", **overrides: object
) -> WorkflowStatus:
    async with StatusAggregator(settings(server.urls(), **overrides)) as agg:
        return await agg.status(workflow_id)


async def test_normal_answers(participants: LoopbackParticipants) -> None:
    healthy(participants)
    status = await status_of(participants)
    assert status.status == "in_transit" and status.complete
    assert {p.source for p in status.participants.values()} == {Source.LIVE}
    assert status.participants["payment"].view == json.loads(
        body("payment", "order-42", "captured")
    )
    assert [r.path for r in participants.received].count("/payments/order-42") == 1


async def test_no_participant_knows_the_workflow(participants: LoopbackParticipants) -> None:
    status = await status_of(participants)
    assert {p.outcome for p in status.participants.values()} == {Outcome.NOT_FOUND}
    assert status.status == "unknown" and status.complete


async def test_http_500(participants: LoopbackParticipants) -> None:
    healthy(participants)

    async def broken(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="internal error")

    participants.behaviours["inventory"] = broken
    status = await status_of(participants)
    part = status.participants["inventory"]
    assert part.outcome == Outcome.UNAVAILABLE and part.error is not None
    assert (part.error.kind, part.error.detail) == (ErrorKind.HTTP_STATUS, "HTTP 500")
    assert status.status == "in_transit" and not status.complete


async def test_timeout(participants: LoopbackParticipants) -> None:
    healthy(participants)
    hang = asyncio.Event()

    async def stall(_: web.Request) -> web.StreamResponse:
        await hang.wait()
        return web.Response()

    participants.behaviours["shipping"] = stall
    shipping = {"url": participants.url("shipping"), "timeout_ms": 100}
    status = await status_of(participants, participants={"shipping": shipping})
    hang.set()
    part = status.participants["shipping"]
    assert part.outcome == Outcome.UNAVAILABLE and part.error is not None
    assert part.error.kind == ErrorKind.TIMEOUT
    assert status.status == "stock_reserved"
    assert status.participants["payment"].source == Source.LIVE


async def test_connection_refused(participants: LoopbackParticipants, closed_port: int) -> None:
    healthy(participants)
    dead = {"url": f"http://127.0.0.1:{closed_port}/payments/{{workflow_id}}"}
    status = await status_of(participants, participants={"payment": dead})
    part = status.participants["payment"]
    assert part.outcome == Outcome.UNAVAILABLE and part.error is not None
    assert part.error.kind == ErrorKind.CONNECTION
    assert part.error.detail == "cannot connect: connection refused"
    assert status.status == "in_transit"


async def test_invalid_json(participants: LoopbackParticipants) -> None:
    async def garbage(_: web.Request) -> web.StreamResponse:
        return web.Response(
            text='{"workflow_id": "order-42", "sta', content_type="application/json"
        )

    participants.behaviours["payment"] = garbage
    part = (await status_of(participants)).participants["payment"]
    assert part.outcome == Outcome.INVALID and part.error is not None
    assert part.error.kind == ErrorKind.INVALID_JSON


async def test_schema_violation_names_the_field(participants: LoopbackParticipants) -> None:
    participants.behaviours["payment"] = answer("payment", "captured", amount="lots")
    part = (await status_of(participants)).participants["payment"]
    assert part.outcome == Outcome.INVALID and part.error is not None
    assert part.error.kind == ErrorKind.SCHEMA_VIOLATION
    assert part.error.detail.startswith("amount: Input should be a valid integer")


async def test_tolerant_of_extra_fields(participants: LoopbackParticipants) -> None:
    participants.behaviours["payment"] = answer("payment", "captured", risk_score=0.3)
    part = (await status_of(participants)).participants["payment"]
    assert part.outcome == Outcome.OK and part.view is not None
    assert "risk_score" not in part.view


async def test_oversized_body_with_and_without_a_length(participants: LoopbackParticipants) -> None:
    big = b'{"pad": "' + b"x" * 300_000 + b'"}'

    async def declared(_: web.Request) -> web.StreamResponse:
        return web.Response(body=big, content_type="application/json")

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(big), 65_536):
            await response.write(big[start : start + 65_536])
        await response.write_eof()
        return response

    participants.behaviours.update(payment=declared, inventory=streamed)
    status = await status_of(participants)
    for name in ("payment", "inventory"):
        part = status.participants[name]
        assert part.outcome == Outcome.INVALID and part.error is not None
        assert (part.error.kind, part.error.detail) == (
            ErrorKind.BODY_TOO_LARGE,
            "body larger than 262144 bytes",
        )


async def test_redirects_are_not_followed(participants: LoopbackParticipants) -> None:
    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/admin/secrets")

    participants.behaviours["payment"] = redirect
    part = (await status_of(participants)).participants["payment"]
    assert part.outcome == Outcome.INVALID and part.error is not None
    assert "redirect" in part.error.detail
    assert all(not r.path.startswith("/admin") for r in participants.received)


async def test_compressed_bodies_are_refused(participants: LoopbackParticipants) -> None:
    async def gzipped(request: web.Request) -> web.StreamResponse:
        payload = gzip.compress(body("payment", "order-42", "captured"))
        return web.Response(
            body=payload, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    participants.behaviours["payment"] = gzipped
    part = (await status_of(participants)).participants["payment"]
    assert part.outcome == Outcome.INVALID and part.error is not None
    assert "content-encoding" in part.error.detail


async def test_what_participants_receive(participants: LoopbackParticipants) -> None:
    async def with_cookie(request: web.Request) -> web.StreamResponse:
        response = await answer("payment", "captured")(request)
        response.set_cookie("session", "secret")
        return response

    participants.behaviours["payment"] = with_cookie
    async with StatusAggregator(settings(participants.urls(), cache={"ttl_ms": 1})) as agg:
        await agg.status("order-1", headers={"X-Request-ID": "req-7"})
        await agg.status("order-2")
    first, second = participants.requests_to("payment")
    assert first.headers["X-Request-ID"] == "req-7"
    assert first.headers["Accept-Encoding"] == "identity"
    assert "Cookie" not in second.headers
    assert first.path == "/payments/order-1"


async def test_ids_are_one_encoded_path_segment(participants: LoopbackParticipants) -> None:
    await status_of(participants, "tenant:order.1")
    assert {r.raw_path for r in participants.received} == {
        "/payments/tenant%3Aorder.1",
        "/reservations/tenant%3Aorder.1",
        "/shipments/tenant%3Aorder.1",
    }


async def test_a_whole_status_in_every_case(participants: LoopbackParticipants) -> None:
    """Whatever each participant does, the answer is a full WorkflowStatus."""
    healthy(participants)
    status = await status_of(participants, "order-43")
    again = WorkflowStatus.model_validate_json(status.model_dump_json())
    assert again == status
    assert set(status.participants) == {"payment", "inventory", "shipping"}


async def test_a_call_on_the_transport_alone_is_bounded_by_asyncio_timeout(
    participants: LoopbackParticipants,
) -> None:
    from aggregator import AiohttpTransport, OutboundRequest

    hang = asyncio.Event()

    async def stall(_: web.Request) -> web.StreamResponse:
        await hang.wait()
        return web.Response()

    participants.behaviours["payment"] = stall
    url = participants.url("payment").replace("{workflow_id}", "o-1")
    async with AiohttpTransport() as transport:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await transport(OutboundRequest(url=url, headers={}, max_body_bytes=1024))
        assert transport.is_open  # the session outlives a call cut short
    hang.set()


async def test_every_cache_control_line_is_read(participants: LoopbackParticipants) -> None:
    """``no-store`` on the first of two Cache-Control lines still keeps the part
    out of the cache: no line is lost to the next one."""
    healthy(participants)

    async def two_lines(request: web.Request) -> web.StreamResponse:
        response = await answer("payment", "captured")(request)
        response.headers.add("Cache-Control", "No-Store")
        response.headers.add("Cache-Control", "max-age=60")
        return response

    participants.behaviours["payment"] = two_lines
    async with StatusAggregator(settings(participants.urls())) as agg:
        await agg.status("order-42")
        again = await agg.status("order-42")
    assert again.participants["payment"].source is Source.LIVE
    assert again.participants["inventory"].source is Source.CACHE
    assert len(participants.requests_to("payment")) == 2


async def test_an_encoded_body_is_refused_for_its_encoding_before_its_size(
    participants: LoopbackParticipants,
) -> None:
    """A gzip bomb announcing 10 MB is an unsupported encoding, not a body too large."""
    healthy(participants)

    async def bomb(_: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b"\0" * 1024,
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Content-Length": str(10_000_000),
            },
        )

    participants.behaviours["payment"] = bomb
    part = (await status_of(participants)).participants["payment"]
    assert part.outcome is Outcome.INVALID and part.error is not None
    assert part.error.kind is ErrorKind.UNEXPECTED_RESPONSE
    assert part.error.detail == "unsupported content-encoding 'gzip'"


async def test_max_concurrency_calls_really_are_in_flight_at_once(
    participants: LoopbackParticipants,
) -> None:
    """With ``max_concurrency = 300`` and a participant that holds every call, 300
    calls reach it at once: the outbound pool is sized from the settings, not left
    at a fixed size shared by every participant."""
    wanted = 300
    in_flight = 0
    everyone = asyncio.Event()
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight
        in_flight += 1
        if in_flight >= wanted:
            everyone.set()
        await release.wait()
        return await answer("payment", "captured")(request)

    healthy(participants)  # states that raise no anomaly: nobody is asked again
    participants.behaviours["payment"] = hold
    slow = {
        "url": participants.url("payment"),
        "timeout_ms": 60_000,
        "protection": {"max_concurrency": wanted},
    }
    configured = settings(participants.urls(), participants={"payment": slow}, deadline_ms=60_000)
    async with StatusAggregator(configured) as agg:
        asking = [asyncio.create_task(agg.status(f"o-{n}")) for n in range(wanted)]
        try:
            await asyncio.wait_for(everyone.wait(), 30)  # a bound on a hang, not a timing
        finally:
            release.set()
        statuses = await asyncio.gather(*asking)
    assert in_flight == wanted
    assert {s.participants["payment"].outcome for s in statuses} == {Outcome.OK}
    assert configured.outbound_connections == wanted + 2 * 32


async def test_failed_calls_cannot_flood_the_log(
    participants: LoopbackParticipants, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A participant failing every call is logged 20 lines in 10 s at most, however
    many calls fail (a batch of 100 ids would otherwise write 100 lines)."""
    healthy(participants)
    dead = {
        "url": f"http://127.0.0.1:{closed_port}/payments/{{workflow_id}}",
        "protection": {"breaker_threshold": 1_000, "retry": False},
    }
    caplog.set_level(logging.WARNING, logger="aggregator.client")
    async with StatusAggregator(
        settings(participants.urls(), participants={"payment": dead})
    ) as agg:
        statuses = await agg.status_many([f"o-{n}" for n in range(60)])
    assert {s.participants["payment"].outcome for s in statuses} == {Outcome.UNAVAILABLE}
    logged = [r for r in caplog.records if r.name == "aggregator.client"]
    assert 20 <= len(logged) < 60  # 20 a window of 10 s: 20 unless the machine stalls
