"""One table says what a participant's HTTP status means, to the parser, the breaker
and the retry alike: every code from 100 to 599, read from the table and met in a
real call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from aggregator import AiohttpTransport, BreakerState, Settings, StatusAggregator
from aggregator._statuses import meaning
from aggregator._transport import TransportResponse
from contracts import ErrorKind, Outcome
from tests.helpers import settings

CODES = range(100, 600)
INTERIM = [code for code in range(100, 200) if code != 101]  # 101 is a final answer


def test_the_table_covers_every_code_with_one_meaning() -> None:
    for code in CODES:
        said = meaning(code)
        assert (said.kind is None) == (code in (200, 404)), code
        assert said.breaker_failure == (said.outcome is Outcome.UNAVAILABLE), code
        assert not said.retryable or said.breaker_failure, code
    for odd in (99, 101, 150, 600):
        said = meaning(odd)
        assert (said.outcome, said.kind) == (Outcome.INVALID, ErrorKind.UNEXPECTED_RESPONSE)
        assert not (said.breaker_failure or said.retryable)
    assert {code for code in CODES if meaning(code).breaker_failure} == {
        408,
        425,
        429,
        *range(500, 600),
    }
    assert {code for code in CODES if meaning(code).retryable} == {408, 425, 502, 504}
    assert meaning(302).detail == "redirect (HTTP 302) not followed"


class RawParticipant:
    """Answers ``/payments/<code>`` with that status line and an empty body; an
    interim (1xx) status line is followed by a final 404, as HTTP requires."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                path = line.split()[1]
                code = int(path.rsplit(b"/", 1)[1])
                if path.startswith(b"/payments/"):
                    self.calls[code] = self.calls.get(code, 0) + 1
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                if code in INTERIM:
                    writer.write(f"HTTP/1.1 {code} Interim\r\n\r\n".encode())
                    code = 404
                writer.write(f"HTTP/1.1 {code} Any\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, ValueError, IndexError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[tuple[RawParticipant, int]]:
    participant = RawParticipant()
    server = await asyncio.start_server(participant.serve, "127.0.0.1", 0)
    try:
        yield participant, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _settings(port: int) -> Settings:
    protection = {
        "breaker_threshold": 1,
        "retry_backoff_ms": 0,
        "retry_budget_min": 10_000,
        "retry_budget_ratio": 1,
    }
    urls = {
        "payment": f"http://127.0.0.1:{port}/payments/{{workflow_id}}",
        "inventory": f"http://127.0.0.1:{port}/reservations/{{workflow_id}}",
        "shipping": f"http://127.0.0.1:{port}/shipments/{{workflow_id}}",
    }
    configured = settings(urls)
    payment = configured.participants["payment"].model_copy(
        update={
            "protection": configured.participants["payment"].protection.model_copy(
                update=protection
            )
        }
    )
    return configured.model_copy(
        update={"participants": {**configured.participants, "payment": payment}}
    )


def _expected(code: int) -> Iterator[object]:
    said = meaning(404 if code in INTERIM else code)
    yield said.outcome
    yield said.kind
    yield said.breaker_failure
    yield 2 if said.retryable else 1


async def test_every_code_means_in_a_real_call_what_the_table_says(
    raw: tuple[RawParticipant, int],
) -> None:
    participant, port = raw
    configured = _settings(port)
    seen = {}
    async with AiohttpTransport() as transport:
        for code in CODES:
            async with StatusAggregator(configured, transport=transport) as agg:
                part = (await agg.answer(str(code))).parts["payment"]
                opened = agg.breaker_states()["payment"] is BreakerState.OPEN
            kind = None if part.error is None else part.error.kind
            seen[code] = (part.outcome, kind, opened, participant.calls.get(code))
    for code in CODES:
        if code == 200:  # an empty 200 is not JSON: invalid, as the contract says
            assert seen[code][0] is Outcome.INVALID and seen[code][2:] == (False, 1)
            continue
        assert seen[code] == tuple(_expected(code)), code


def test_the_parser_reads_the_table() -> None:
    from aggregator._response import interpret
    from aggregator._rules import ORDER_FULFILMENT

    payment = ORDER_FULFILMENT.by_name["payment"]
    for code in CODES:
        if code == 200:
            continue
        part = interpret(TransportResponse(code, {}, b""), payment, "o-1", 0.0)
        said = meaning(code)
        assert part.outcome is said.outcome, code
        assert (None if part.error is None else part.error.kind) is said.kind, code
