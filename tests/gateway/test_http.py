"""GET /workflows/{id}/status and friends, end to end over loopback."""

from __future__ import annotations

import asyncio
import json
import logging

import jsonschema
import pytest
from aiohttp import web
from yarl import URL

from aggregator.gateway._logs import RequestIdFilter
from aggregator.testing import ManualClock
from contracts import Problem, WorkflowStatus
from tests.gateway.harness import documented_routes, gateway_settings, running_gateway
from tests.helpers import settings as make_settings
from tests.loopback import LoopbackParticipants, answer, healthy

PROBLEM = "application/problem+json"


async def problem_of(response: object) -> Problem:
    assert isinstance(response, __import__("aiohttp").ClientResponse)
    assert response.content_type == PROBLEM
    return Problem.model_validate(await response.json(content_type=None))


async def test_a_full_status_with_its_headers(participants: LoopbackParticipants) -> None:
    healthy(participants)
    async with running_gateway(gateway_settings(participants), clock=ManualClock()) as gw:
        response = await gw.client.get("/workflows/order-42/status")
        status = WorkflowStatus.model_validate(await response.json())
    assert response.status == 200
    assert status.status == "in_transit" and status.complete
    assert response.headers["X-Workflow-Complete"] == "true"
    assert response.headers["Cache-Control"] == "max-age=2"
    assert response.headers["Age"] == "0"
    assert response.headers["ETag"].startswith('W/"')
    assert len(response.headers["X-Request-ID"]) == 32


async def test_cached_parts_age_and_the_etag_answers_304(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    clock = ManualClock()
    async with running_gateway(gateway_settings(participants), clock=clock) as gw:
        first = await gw.client.get("/workflows/order-42/status")
        tag = first.headers["ETag"]
        clock.advance(1.2)
        second = await gw.client.get("/workflows/order-42/status")
        again = await gw.client.get("/workflows/order-42/status", headers={"If-None-Match": tag})
        clock.advance(1.0)
        participants.behaviours["shipping"] = answer("shipping", "delivered", version=2)
        changed = await gw.client.get("/workflows/order-42/status", headers={"If-None-Match": tag})
    assert second.status == 200 and second.headers["ETag"] == tag
    assert second.headers["Age"] == "1"
    # 1.2 s old, 0.8 s left: Age 1 + no whole second left, so a cache adding its own
    # time to Age never keeps the answer past its parts' freshness.
    assert second.headers["Cache-Control"] == "max-age=1"
    assert again.status == 304 and again.headers["ETag"] == tag
    assert await again.read() == b""
    assert changed.status == 200 and changed.headers["ETag"] != tag
    assert len(participants.requests_to("shipping")) == 2


async def test_an_incomplete_answer_is_not_stored(
    participants: LoopbackParticipants, closed_port: int
) -> None:
    healthy(participants)
    dead = {"url": f"http://127.0.0.1:{closed_port}/p/{{workflow_id}}"}
    async with running_gateway(
        gateway_settings(participants, participants={"payment": dead})
    ) as gw:
        response = await gw.client.get("/workflows/order-42/status")
        status = WorkflowStatus.model_validate(await response.json())
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Workflow-Complete"] == "false"
    assert status.participants["payment"].outcome == "unavailable"


async def test_every_participant_without_a_record_is_404(
    participants: LoopbackParticipants,
) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        response = await gw.client.get("/workflows/order-0/status")
        body = await problem_of(response)
    assert response.status == 404
    assert body.type == "urn:status-aggregator:problem:workflow-not-found"
    assert body.model_extra == {"workflow_id": "order-0"}


async def test_nothing_reachable_is_503_with_retry_after(closed_port: int) -> None:
    dead = f"http://127.0.0.1:{closed_port}"
    urls = {
        "payment": f"{dead}/p/{{workflow_id}}",
        "inventory": f"{dead}/i/{{workflow_id}}",
        "shipping": f"{dead}/s/{{workflow_id}}",
    }
    from tests.helpers import settings

    async with running_gateway(settings(urls)) as gw:
        response = await gw.client.get("/workflows/order-1/status")
        body = await problem_of(response)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert body.type.endswith(":participants-unavailable")
    assert body.model_extra is not None
    assert body.model_extra["participants"]["payment"]["error"]["kind"] == "connection"


async def test_a_stale_part_keeps_the_answer_200(participants: LoopbackParticipants) -> None:
    healthy(participants)
    clock = ManualClock()
    async with running_gateway(gateway_settings(participants), clock=clock) as gw:
        await gw.client.get("/workflows/order-42/status")

        async def down(_: web.Request) -> web.StreamResponse:
            return web.Response(status=503)

        participants.behaviours.update(payment=down, inventory=down, shipping=down)
        clock.advance(7)
        response = await gw.client.get("/workflows/order-42/status")
        status = WorkflowStatus.model_validate(await response.json())
    assert response.status == 200
    assert {p.source for p in status.participants.values()} == {"stale"}
    assert response.headers["Age"] == "7" and response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/workflows/..%2Fadmin/status",
        "/workflows/a%2Fb/status",
        "/workflows/a/b/status",
        "/workflows/x%3Fy=1/status",
        "/workflows/%252e%252e/status",
        "/workflows/a%00b/status",
        "/workflows/%C3%BCnicode/status",
        "/workflows/" + "a" * 200 + "/status",
    ],
)
async def test_bad_ids_are_400_and_reach_no_participant(
    participants: LoopbackParticipants, raw_path: str
) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        from yarl import URL

        response = await gw.client.get(URL(gw.url + raw_path, encoded=True))
        body = await problem_of(response)
    assert response.status == 400
    assert body.type.endswith(":invalid-workflow-id")
    assert participants.received == []


async def test_unknown_routes_and_methods_are_problems(participants: LoopbackParticipants) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        missing = await gw.client.get("/nowhere")
        wrong = await gw.client.delete("/workflows/order-1/status")
        missing_body, wrong_body = await problem_of(missing), await problem_of(wrong)
        others = {
            "HEAD /healthz": await gw.client.head("/healthz"),
            "POST /metrics": await gw.client.post("/metrics"),
            "GET batch": await gw.client.get("/workflows/status:batch"),
            "newline": await gw.client.get(URL(gw.url + "/a%0Ab", encoded=True)),
        }
        bodies = {name: await response.read() for name, response in others.items()}
        scrape = await (await gw.client.get("/metrics")).text()
    assert missing.status == 404 and missing_body.type.endswith(":not-found")
    assert wrong.status == 405 and wrong_body.type.endswith(":method-not-allowed")
    assert wrong.headers["Allow"] == "GET, HEAD"
    assert {name: (r.status, r.headers.get("Allow")) for name, r in others.items()} == {
        "HEAD /healthz": (200, None),
        "POST /metrics": (405, "GET, HEAD"),
        "GET batch": (405, "POST"),
        "newline": (404, None),
    }
    for name in ("POST /metrics", "GET batch", "newline"):
        assert Problem.model_validate_json(bodies[name]).status == others[name].status
    assert 'route="unmatched",status="404"' in scrape
    assert 'route="unmatched",status="405"' in scrape


async def test_batch(participants: LoopbackParticipants) -> None:
    participants.behaviours["payment"] = answer("payment", "captured")

    async def only_order_1(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/order-1"):
            return await answer("payment", "captured")(request)
        return web.Response(status=404)

    participants.behaviours["payment"] = only_order_1
    async with running_gateway(gateway_settings(participants)) as gw:
        response = await gw.client.post(
            "/workflows/status:batch", json={"ids": ["order-1", "../x", "order-2"]}
        )
        payload = await response.json()
    assert response.status == 200
    results = payload["results"]
    assert [r["workflow_id"] for r in results] == ["order-1", "../x", "order-2"]
    assert [r["http_status"] for r in results] == [200, 400, 404]
    assert results[0]["status"]["status"] == "paid" and results[0]["problem"] is None
    assert results[1]["problem"]["type"].endswith(":invalid-workflow-id")
    assert results[1]["status"] is None
    assert results[2]["problem"]["type"].endswith(":workflow-not-found")
    assert results[2]["status"]["participants"]["payment"]["outcome"] == "not_found"


@pytest.mark.parametrize(
    ("body", "slug", "detail"),
    [
        ({"ids": [f"o-{i}" for i in range(101)]}, "batch-too-large", "101 ids given; at most 100"),
        ({"ids": []}, "invalid-request", "ids: List should have at least 1 item"),
        ({"ids": "order-1"}, "invalid-request", "ids: Input should be a valid array"),
        ({"ids": [1]}, "invalid-request", "ids.0: Input should be a valid string"),
        ({"workflows": ["a"]}, "invalid-request", "ids: Field required"),
        ("not json", "invalid-request", "Invalid JSON"),
    ],
)
async def test_bad_batches_are_400(
    participants: LoopbackParticipants, body: object, slug: str, detail: str
) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response = await gw.client.post("/workflows/status:batch", data=data)
        problem = await problem_of(response)
    assert response.status == 400
    assert problem.type.endswith(f":{slug}") and detail in problem.detail
    assert participants.received == []


async def test_an_oversized_request_body_is_413(participants: LoopbackParticipants) -> None:
    async with running_gateway(gateway_settings(participants)) as gw:
        response = await gw.client.post("/workflows/status:batch", data=b"x" * 300_000)
        problem = await problem_of(response)
    assert response.status == 413 and problem.type.endswith(":payload-too-large")


async def test_health_readiness_and_metrics(participants: LoopbackParticipants) -> None:
    healthy(participants)
    async with running_gateway(gateway_settings(participants)) as gw:
        await gw.client.get("/workflows/order-1/status")
        await gw.client.get("/workflows/order-1/status")
        alive = await gw.client.get("/healthz")
        ready = await gw.client.get("/readyz")
        ready_body = await ready.json()
        scraped = await (await gw.client.get("/metrics")).text()
    assert alive.status == 200 and (await alive.json()) == {"status": "alive"}
    assert ready.status == 200
    assert ready_body["participants"]["payment"] == {"circuit": "closed"}
    for line in (
        'aggregator_http_requests_total{method="GET",'
        'route="/workflows/{workflow_id}/status",status="200"} 2.0',
        'aggregator_participant_cache_hits_total{participant="payment"} 1.0',
        'aggregator_participant_cache_misses_total{participant="shipping"} 1.0',
        'aggregator_participant_coalesced_waits_total{participant="payment"} 0.0',
        'aggregator_participant_stale_served_total{participant="payment"} 0.0',
        'aggregator_participant_parts_total{outcome="ok",participant="inventory"} 2.0',
        'aggregator_participant_circuit_state{participant="payment",state="closed"} 1.0',
        'aggregator_participant_call_duration_seconds_count{outcome="ok",'
        'participant="payment"} 1.0',
        "aggregator_http_requests_in_flight 1.0",
    ):
        assert line in scraped, line
    route = 'route="/workflows/{workflow_id}/status"'
    assert f"aggregator_http_request_duration_seconds_count{{{route}}} 2.0" in scraped
    assert f'aggregator_http_request_duration_seconds_bucket{{le="+Inf",{route}}} 2.0' in scraped


async def test_anomalies_in_the_answer_and_in_metrics(participants: LoopbackParticipants) -> None:
    healthy(participants)
    participants.behaviours["payment"] = answer("payment", "refunded")  # after shipment
    async with running_gateway(gateway_settings(participants)) as gw:
        status = await (await gw.client.get("/workflows/order-1/status")).json()
        scraped = await (await gw.client.get("/metrics")).text()
    assert status["anomalies"] == [
        {
            "code": "refund_after_shipment",
            "message": "the payment was refunded while the parcel is in transit or delivered",
            "participants": ["payment", "shipping"],
            "confirmed": True,
        }
    ]
    assert [step["participant"] for step in status["timeline"]] == [
        "payment",
        "inventory",
        "shipping",
    ]
    assert status["since"] == "2026-01-01T10:00:00Z"
    assert (
        'aggregator_anomalies_total{code="refund_after_shipment",confirmed="true"} 1.0' in scraped
    )
    assert "# TYPE aggregator_anomalies_withdrawn_total counter" in scraped


async def test_openapi_describes_the_real_answers(participants: LoopbackParticipants) -> None:
    healthy(participants)
    participants.behaviours["shipping"] = answer("shipping", "delivered", carrier=None)
    async with running_gateway(gateway_settings(participants)) as gw:
        document = await (await gw.client.get("/openapi.json")).json()
        ok = await (await gw.client.get("/workflows/order-1/status")).json()
        bad = await (await gw.client.get("/workflows/..%2F/status")).json(content_type=None)
        batch = await (
            await gw.client.post("/workflows/status:batch", json={"ids": ["a", "-"]})
        ).json()
    assert document["openapi"] == "3.1.0"

    def validate(instance: object, model: str) -> None:
        schema = {"$ref": f"#/components/schemas/{model}", "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(instance)

    validate(ok, "WorkflowStatus")
    validate(bad, "Problem")
    validate(batch, "BatchResponse")
    with pytest.raises(jsonschema.ValidationError):
        validate({**ok, "complete": "yes"}, "WorkflowStatus")
    paths = document["paths"]
    assert set(paths["/workflows/{workflow_id}/status"]["get"]["responses"]) == {
        "200",
        "304",
        "400",
        "401",
        "404",
        "503",
    }


async def test_overload_is_a_fast_503(participants: LoopbackParticipants) -> None:
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=404)

    participants.behaviours.update(payment=slow, inventory=slow, shipping=slow)
    settings = gateway_settings(participants, gateway={"max_concurrent_requests": 2})
    async with running_gateway(settings) as gw:
        held = [asyncio.create_task(gw.client.get(f"/workflows/o-{i}/status")) for i in range(2)]
        await participants.until_received(6)
        refused = await gw.client.get("/workflows/o-9/status")
        body = await problem_of(refused)
        release.set()
        answered = [await task for task in held]
        after = await gw.client.get("/workflows/o-9/status")
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    assert body.type.endswith(":overloaded")
    assert [r.status for r in answered] == [404, 404]
    assert after.status == 404


async def test_no_address_reaches_the_client_and_the_log_keeps_it(
    participants: LoopbackParticipants, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection reads "connection refused" in the part and in a 503
    problem; the operator's log line names the address, under the request id."""
    dead = f"http://127.0.0.1:{closed_port}"
    urls = {
        name: url.replace(participants.base_url, dead) for name, url in participants.urls().items()
    }
    caplog.set_level(logging.WARNING, logger="aggregator.client")
    caplog.handler.addFilter(RequestIdFilter())  # as the gateway's log handler does
    async with running_gateway(make_settings(urls)) as gw:
        response = await gw.client.get(
            "/workflows/o-1/status", headers={"X-Request-ID": "req-leak-1"}
        )
        text = await response.text()
    assert response.status == 503
    problem = json.loads(text)
    assert {p["error"]["detail"] for p in problem["participants"].values()} == {
        "cannot connect: connection refused"
    }
    assert str(closed_port) not in text and "127.0.0.1" not in text
    logged = [r for r in caplog.records if r.name == "aggregator.client"]
    assert logged and all(str(closed_port) in r.getMessage() for r in logged)
    assert {getattr(r, "request_id", None) for r in logged} == {"req-leak-1"}


async def test_head_is_answered_on_every_get_route_as_get_would_without_a_body(
    participants: LoopbackParticipants,
) -> None:
    """RFC 9110 9.3.2: the same status and headers as GET, and no body."""
    healthy(participants)
    paths = [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/workflows/order-1/status",
        "/workflows/%20/status",
    ]
    varying = {"Date", "X-Request-ID", "Content-Length"}  # metrics grow between the two
    async with running_gateway(gateway_settings(participants), clock=ManualClock()) as gw:
        for path in paths:
            got = await gw.client.get(URL(gw.url + path, encoded=True))
            await got.read()
            head = await gw.client.head(URL(gw.url + path, encoded=True))
            assert head.status == got.status, path
            assert await head.read() == b"", path
            same = {k: v for k, v in got.headers.items() if k not in varying}
            assert {k: v for k, v in head.headers.items() if k not in varying} == same, path


@pytest.mark.parametrize("auth", [False, True])
async def test_openapi_is_valid_and_lists_every_route_of_the_app(
    participants: LoopbackParticipants, auth: bool
) -> None:
    keys = {"auth": {"enabled": True, "keys": {"key-0123456789abcdef": "t"}}} if auth else {}
    async with running_gateway(gateway_settings(participants, gateway=keys)) as gw:
        document, _ = await documented_routes(gw)
    status = document["paths"]["/workflows/{workflow_id}/status"]
    assert "ETag" in status["get"]["responses"]["304"]["headers"]
    assert "Retry-After" in status["get"]["responses"]["503"]["headers"]
    assert "content" not in status["head"]["responses"]["200"]
    assert "413" in document["paths"]["/workflows/status:batch"]["post"]["responses"]
    assert ("Vary" in status["get"]["responses"]["200"]["headers"]) is auth


async def test_problems_are_never_stored_downstream(participants: LoopbackParticipants) -> None:
    """A 404 is cacheable by heuristic (RFC 9110); in a choreography it often means
    "not yet", so no problem may be kept by a cache in front."""
    async with running_gateway(gateway_settings(participants)) as gw:
        unknown = await gw.client.get("/workflows/order-9999/status")
        invalid = await gw.client.get("/workflows/..%2F/status")
        nowhere = await gw.client.get("/nowhere")
    assert [unknown.status, invalid.status, nowhere.status] == [404, 400, 404]
    assert {r.headers["Cache-Control"] for r in (unknown, invalid, nowhere)} == {"no-store"}


# The child only writes to a pipe and leaves: no lock another thread holds is touched.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_worker_tags_its_request_ids_anew() -> None:
    """Request ids are unique across processes, forked ones too (gunicorn --preload)."""
    import os

    from aggregator.gateway import _app

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its tag, and leave at once
        os.write(write, _app._new_request_id()[:16].encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16 and child != _app._new_request_id()[:16]
