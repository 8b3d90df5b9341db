"""Each case the aggregator depends on beyond one valid answer, against a payment
provider that breaks exactly that, and the reasons that say what to fix."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from contracts import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS, PaymentView
from contracts._http import Reply
from contracts._kit import Result, Verifier, cases_for, check_reply, p99
from contracts.cli import _parser
from tests.contracts.broken_provider import payment_variant


async def verify(variant: str, **options: int) -> tuple[str, list[Result]]:
    async with payment_variant(variant) as url:
        hook = f"{url}/_contract/state"
        verifier = Verifier("payment", url, state_hook=hook, **options)  # type: ignore[arg-type]
        return url, await verifier.run()


def failures(results: list[Result]) -> dict[str, list[str]]:
    return {r.case.name: list(r.reasons) for r in results if not r.passed}


@pytest.mark.parametrize("variant", ["good", "leap-second"])
async def test_a_good_provider_passes_every_case(variant: str) -> None:
    _, results = await verify(variant)
    assert failures(results) == {}
    assert [r.case.name for r in results] == [c.name for c in cases_for("payment")]


async def test_a_provider_slower_than_the_aggregator_s_timeout_fails_the_latency_case() -> None:
    # 2 s against a 500 ms budget: no thin margin, and few requests keep the test quick.
    _, results = await verify("slow", latency_requests=3, latency_concurrency=3)
    (name, [reason]), *others = failures(results).items()
    assert (name, others) == ("latency:p99", [])
    # Each request is given twice the budget (1 s at least), not the kit's 5 s.
    assert reason.startswith(
        "p99 latency over 1000 ms (no answer: no whole answer within 1 s) over 3 requests"
    )
    assert "exceeds the budget of 500 ms, the aggregator's timeout_ms (--budget-ms" in reason


async def test_the_budget_matches_a_deployment() -> None:
    _, results = await verify("slow", latency_requests=2, latency_concurrency=2, budget_ms=10_000)
    assert failures(results) == {}


async def test_a_body_over_the_aggregator_s_cap_fails() -> None:
    _, results = await verify("oversized")
    assert failures(results) == {
        "state:captured": [
            "body is over 262144 bytes, the aggregator's max_body_bytes: it refuses the answer"
            " (--max-body-bytes to match your deployment)"
        ]
    }
    _, results = await verify("oversized", max_body_bytes=1024 * 1024)
    assert failures(results) == {}


async def test_a_version_that_does_not_move_forward_fails() -> None:
    _, results = await verify("frozen-version")
    assert failures(results) == {
        "version:increases": [
            "version: expected more than 1 after the record moved from 'pending' to"
            " 'authorized', got 1: the aggregator never lets a lower or equal version"
            " replace the one it holds"
        ]
    }


async def test_a_unix_time_is_not_an_rfc_3339_date_time() -> None:
    _, results = await verify("epoch-date")
    assert failures(results) == {
        "state:captured": [
            "updated_at: must be an RFC 3339 date-time string with an offset,"
            ' such as "2026-01-01T10:00:00Z" (got "1767261600")'
        ]
    }


async def test_a_redirect_says_it_is_never_followed_and_where_it_pointed() -> None:
    url, results = await verify("redirecting")
    [(name, [reason])] = failures(results).items()
    assert name == "state:captured"
    assert reason.startswith("expected HTTP 200, got a redirect (HTTP 302) to '/v2/payments/")
    assert f"for GET {url}/payments/contract-captured-" in reason
    assert reason.endswith("the aggregator never follows redirects, so answer at this URL itself")


async def test_a_404_on_the_punctuation_id_shows_the_url_and_says_decode() -> None:
    url, results = await verify("undecoded-colon")
    [(name, [reason])] = failures(results).items()
    assert name == "id:punctuation"
    assert reason.startswith(f"expected HTTP 200, got HTTP 404 for GET {url}/payments/")
    assert "contract.dots_under%3Acolons-dashes-pending-" in reason
    assert reason.endswith(
        "the id's ':' arrives percent-encoded as %3A: decode the path segment before you"
        " look the id up (unless, as other cases may show, the state hook answered 201"
        " but the record is not served)"
    )


async def test_a_hook_that_stores_nothing_is_named() -> None:
    _, results = await verify("forgetful-hook", latency_requests=2)
    found = failures(results)
    assert set(found) == {c.name for c in cases_for("payment")} - {"not-found"}
    [reason] = found["state:pending"]
    assert reason.endswith("the state hook answered 204 but the record is not served")
    assert found["version:increases"][0].startswith("first read, in 'pending': expected HTTP 200")
    [latency] = found["latency:p99"]
    assert latency.startswith("expected HTTP 200 to every request of GET http://")
    assert latency.endswith(", got HTTP 404")


async def test_a_hook_refusing_an_id_it_has_seen_says_it_must_accept_it() -> None:
    _, results = await verify("once-only-hook")
    found = failures(results)
    # The headers case asks for the id state:pending set up: the same id, the same state.
    assert sorted(found) == ["request-headers", "version:increases"]
    [again], [later] = found["request-headers"], found["version:increases"]
    assert again.startswith("state hook answered HTTP 409 for {")
    assert later.startswith("second read, in 'authorized': state hook answered HTTP 409 for {")
    for reason in (again, later):
        assert reason.endswith(
            ": the hook must accept an id it has set up before, in another state or the same"
            " (the kit sets some ids up twice: request-headers in the same state,"
            " version:increases in another)"
        )


async def test_a_hook_at_another_url_says_to_check_it() -> None:
    async with payment_variant("good") as url:
        verifier = Verifier("payment", url, state_hook=f"{url}/_contract/states")
        result = await verifier.run_case(cases_for("payment")[1])
    [reason] = result.reasons
    assert reason.startswith("state hook answered HTTP 404 for {'participant': 'payment'")
    assert reason.endswith(
        ": is --state-hook the hook's own URL? The kit POSTs JSON to exactly that URL"
    )


async def test_a_bad_date_does_not_hide_a_version_that_stands_still() -> None:
    _, results = await verify("unix-time-frozen", latency_requests=2)
    reasons = failures(results)["version:increases"]
    assert [reason.split(": ", 1)[0] for reason in reasons] == [
        "first read, in 'pending'",
        "second read, in 'authorized'",
        "version",
    ]
    assert reasons[0].endswith('(got "1767261600")')
    assert reasons[2].startswith("version: expected more than 1 after the record moved")


def test_p99_is_the_nearest_rank() -> None:
    assert p99([0.1] * 30) == 0.1
    assert p99([0.1] * 29 + [3.0]) == 3.0  # of 30 requests, one slow one is the p99
    assert p99([0.1] * 100 + [3.0]) == 0.1


def test_the_defaults_are_the_aggregator_s() -> None:
    from aggregator._settings import ParticipantSettings

    settings = ParticipantSettings(url="http://payments.internal/payments/{workflow_id}")
    assert (settings.timeout_ms, settings.max_body_bytes) == (
        DEFAULT_TIMEOUT_MS,
        DEFAULT_MAX_BODY_BYTES,
    )
    args = _parser().parse_args(["verify", "payment", "--base-url", "http://x"])
    assert (args.budget_ms, args.max_body_bytes, args.timeout) == (500, 262_144, 5.0)


async def test_help_shows_the_defaults() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "contracts", "verify", "--help",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = " ".join(out.decode().split())
    assert "(default: 5.0)" in text
    assert "--budget-ms MS" in text and "(default: 500)" in text
    assert "--max-body-bytes BYTES" in text and "(default: 262144, 256 KiB)" in text


@pytest.mark.parametrize(
    ("updated_at", "valid"),
    [
        ("2026-01-01T10:00:00Z", True),
        ("2026-01-01t10:00:00.5-05:30", True),
        ("2016-12-31T23:59:60Z", True),  # a leap second
        ("2016-12-31T23:59:60.25+00:00", True),
        ("1767261600", False),
        (1767261600, False),
        ("2026-01-01 10:00:00Z", False),
        ("2026-01-01T10:00:00", False),
        ("2026-01-01", False),
    ],
)
def test_updated_at_is_rfc_3339_with_an_offset(updated_at: object, valid: bool) -> None:
    case = cases_for("payment")[1]
    body = {"workflow_id": "order-1", "state": case.state, "version": 1, "updated_at": updated_at}
    body.update(amount=1, currency="EUR")
    reply = Reply(200, {"content-type": "application/json"}, json.dumps(body).encode())
    refused = (
        "updated_at: must be an RFC 3339 date-time string with an offset,"
        f' such as "2026-01-01T10:00:00Z" (got {json.dumps(updated_at)})'
    )
    assert check_reply(reply, PaymentView, case, "order-1") == ([] if valid else [refused])


@pytest.mark.parametrize(
    ("headers", "body", "said"),
    [
        ({}, b"{}", "no Content-Type header: send application/json"),
        (
            {"content-type": "application/json", "content-encoding": "gzip"},
            b"\x1f\x8b\x08\x00binary",
            "content-encoding 'gzip': the aggregator asks for identity",
        ),
    ],
    ids=["no-content-type", "gzip"],
)
def test_a_reply_it_cannot_read_is_said_once_and_plainly(
    headers: dict[str, str], body: bytes, said: str
) -> None:
    case = cases_for("payment")[1]
    reasons = check_reply(Reply(200, headers, body), PaymentView, case, "order-1")
    assert reasons[0] == said
    if "content-encoding" in headers:  # nothing more: the body is never read
        assert reasons == [said]


async def test_a_hook_failing_on_its_side_says_where_to_look() -> None:
    async def failing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/_contract/state", failing)
    server = TestServer(app)
    await server.start_server(access_log=None)
    try:
        url = str(server.make_url("")).rstrip("/")
        result = await Verifier("payment", url, state_hook=f"{url}/_contract/state").run_case(
            cases_for("payment")[1]
        )
    finally:
        await server.close()
    [reason] = result.reasons
    assert reason.startswith("state hook answered HTTP 500 for {")
    assert reason.endswith(": the hook failed on your service's side; its log says why")
