"""The kit against a hostile provider, and the stub against hostile clients: every
answer is judged or refused in bounded time, and nothing ends in a traceback."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from contracts import Contract, Stub, StubOptions
from contracts._kit import Verifier
from contracts._pact import pact
from contracts.cli import main

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    handlers: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in handlers:  # a trickle still going: stopped with its connection
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def deep_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = b"[" * 100_000
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    writer.close()


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):  # a header byte every 0.1 s: each read is quick, the answer never ends
        await asyncio.sleep(0.1)
        writer.write(b"X")
        await writer.drain()


async def test_a_body_nested_too_deep_is_not_json_not_a_crash() -> None:
    async with raw_server(deep_json) as url:
        [result] = await Verifier("payment", url, stateless_only=True).run()
    assert result.reasons == (
        "expected HTTP 404 for a workflow the provider never saw, got HTTP 200",
    )
    async with raw_server(deep_json) as url:
        reasons = (await Verifier("payment", url, state_setup=lambda *_: None).run())[1].reasons
    assert reasons[-1].startswith("body is not JSON: '[[[[")


async def test_an_answer_trickled_forever_is_cut_at_the_timeout() -> None:
    async with raw_server(trickle) as url:
        [result] = await Verifier("payment", url, stateless_only=True, timeout=1).run()
    [reason] = result.reasons
    assert reason.startswith(f"no HTTP answer from {url}/payments/contract-unknown-none-")
    assert reason.endswith(": no whole answer within 1 s")


def post(stub: Stub, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    host, port = stub.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/_contract/state", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def get(stub: Stub, path: str) -> int:
    host, port = stub.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{}", {"Content-Length": "abc"}),
        (b"{}", {"Content-Length": "-1"}),
        (b"{}", {"Content-Length": "1000000"}),
        (b"[" * 60_000, {}),
        (b'{"participant": "payment", "state": "captured", "workflow_id": ["a"]}', {}),
        (
            b'{"participant": "payment", "state": "captured", "workflow_id": "'
            + b"x" * 200
            + b'"}',
            {},
        ),
    ],
    ids=[
        "length-not-a-number",
        "length-negative",
        "length-too-large",
        "nested",
        "id-a-list",
        "id-too-long",
    ],
)
def test_the_stub_refuses_a_bad_state_hook_request_with_a_problem(
    body: bytes, headers: dict[str, str]
) -> None:
    with Stub(StubOptions("payment")) as stub:
        status, problem = post(stub, body, {"Content-Type": "application/json", **headers})
        assert (status, problem["status"]) == (400, 400)
        assert problem["title"] == "Invalid provider state"
        assert get(stub, "/payments/" + "x" * 200) == 404  # nothing of it was kept
        assert get(stub, "/payments/captured-" + "x" * 200) == 404  # an id no one has


async def test_a_path_with_a_query_is_served_and_verified() -> None:
    path = "/flights/{workflow_id}/status?tenant=a"
    options = StubOptions("flight", states=("requested", "on hold", "a(b"), path=path)
    with Stub(options) as stub:
        verifier = Verifier(
            "flight", stub.base_url, state_hook=f"{stub.base_url}/_contract/state",
            states=options.states, path=path, latency_requests=2,
        )  # fmt: skip
        results = await verifier.run()
    assert [r.case.name for r in results if not r.passed] == []
    # Ids hold the states as the aggregator allows them: letters, digits and dashes.
    assert results[2].workflow_id.startswith("contract-on-hold-")
    assert results[3].workflow_id.startswith("contract-a-b-")


def test_the_pact_of_odd_states_and_a_query_is_well_formed() -> None:
    contract = Contract.of("flight", states=["a(b", "c"], path="/f/{workflow_id}?tenant=a")
    first = pact(contract)["interactions"][0]
    assert first["request"]["path"] == "/f/pact-a%28b-1"
    assert first["request"]["query"] == {"tenant": ["a"]}
    assert first["response"]["body"]["content"]["state"] == "a(b"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["verify", "payment", "--base-url", "http://x", "--stateless-only", "--timeout", "-1"],
         "the timeout must be a positive number of seconds, not -1.0"),
        (["verify", "payment", "--base-url", "http://x", "--stateless-only", "--timeout", "nan"],
         "the timeout must be a positive number of seconds, not nan"),
        (["verify", "payment", "--base-url", "ftp://x", "--stateless-only"],
         "base URL 'ftp://x' must start with http:// or https://"),
        (["verify", "payment", "--base-url", "http://x", "--stateless-only",
          "--junit-xml", "/nonexistent/r.xml"],
         "--junit-xml: no folder '/nonexistent' to write into"),
        (["stub", "payment", "--port", "70000"], "port 70000 is not between 0 and 65535"),
    ],
)  # fmt: skip
def test_a_command_asked_for_wrongly_says_so_in_one_line(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"python -m contracts: {said}\n"
