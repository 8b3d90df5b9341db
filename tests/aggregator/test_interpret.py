"""Reading a participant's answer: the pure ``interpret`` and the stage that asks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from aggregator import OutboundRequest, Part, TransportFailure, TransportResponse
from aggregator._response import Interpret, Reply, interpret
from aggregator._rules import ORDER_FULFILMENT, ParticipantDef
from aggregator._stage import Ask
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome, PaymentView, Source
from tests.helpers import JSON, body, ok

PAYMENT = ORDER_FULFILMENT.by_name["payment"]
FLIGHT = ParticipantDef("flight", ("pending", "booked"), frozenset({"booked"}))  # GenericView
AT = 1_767_225_600.0


def payment(
    status: int = 200, headers: dict[str, str] | None = None, **fields: Any
) -> TransportResponse:
    """A payment answer: the valid body, with ``fields`` changed (None: removed)."""
    data = json.loads(body("payment", "o-1", "captured"))
    for name, value in fields.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    return TransportResponse(
        status, JSON if headers is None else headers, json.dumps(data).encode()
    )


def read(
    reply: TransportResponse, participant: ParticipantDef = PAYMENT, workflow_id: str = "o-1"
) -> Part:
    return interpret(reply, participant, workflow_id, AT)


def invalid(part: Part, kind: ErrorKind) -> str:
    """The detail of an invalid part, which shows nothing."""
    assert (part.outcome, part.source, part.view) == (Outcome.INVALID, None, None)
    assert part.error is not None and part.error.kind is kind, part.error
    return part.error.detail


# interpret


def test_an_ok_answer_is_a_live_part_with_its_view() -> None:
    part = read(ok("payment", "o-1", "captured", version=3))
    assert (part.outcome, part.source, part.fetched_at, part.error) == (
        Outcome.OK,
        Source.LIVE,
        AT,
        None,
    )
    assert isinstance(part.view, PaymentView)
    assert (part.view.state, part.view.version, part.view.amount) == ("captured", 3, 1999)


def test_not_found_is_a_live_part_without_a_view() -> None:
    part = read(TransportResponse(404, JSON, b'{"title": "not found"}'))
    assert (part.outcome, part.source, part.view, part.error, part.fetched_at) == (
        Outcome.NOT_FOUND,
        Source.LIVE,
        None,
        None,
        AT,
    )


def test_what_the_participant_says_about_keeping_its_answer_is_kept() -> None:
    said = {**JSON, "cache-control": "max-age=5, must-revalidate"}
    part = read(payment(headers=said))
    assert part.directives.max_age == 5 and part.directives.must_revalidate
    gone = read(TransportResponse(404, {"cache-control": "no-store"}, b""))
    assert gone.outcome is Outcome.NOT_FOUND and not gone.directives.storable


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/problem+json",
        "application/vnd.x+json",
    ],
)
def test_json_media_types_are_read(content_type: str) -> None:
    part = read(payment(headers={"content-type": content_type}))
    assert part.outcome is Outcome.OK and part.view is not None


@pytest.mark.parametrize(
    ("content_type", "named"),
    [("text/html", "'text/html'"), ("text/json", "'text/json'"), ("", "missing")],
)
def test_other_media_types_are_refused_naming_the_type(content_type: str, named: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    detail = invalid(read(payment(headers=headers)), ErrorKind.UNEXPECTED_RESPONSE)
    assert named in detail and "not JSON" in detail


def test_an_encoded_body_is_refused() -> None:
    gzipped = read(payment(headers={**JSON, "content-encoding": "gzip"}))
    assert "gzip" in invalid(gzipped, ErrorKind.UNEXPECTED_RESPONSE)
    plain = read(payment(headers={**JSON, "content-encoding": "identity"}))
    assert plain.outcome is Outcome.OK


def test_a_body_that_is_not_json_is_invalid_json() -> None:
    part = read(TransportResponse(200, JSON, b'{"workflow_id": "o-1", "state": '))
    invalid(part, ErrorKind.INVALID_JSON)


def test_a_schema_violation_names_the_field_shortly() -> None:
    detail = invalid(read(payment(amount="x" * 1000)), ErrorKind.SCHEMA_VIOLATION)
    assert detail.startswith("amount: ")
    assert "..." in detail and len(detail) < 200  # the value shown is cut short
    assert "more" not in detail


@pytest.mark.parametrize(
    ("updated_at", "read_as"),
    [
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59+00:00"),  # a leap second
        ("2016-12-31t23:59:60.5+01:00", "2016-12-31T23:59:59.500000+01:00"),
        ("2026-01-01T10:00:00.123456789-05:30", "2026-01-01T10:00:00.123456-05:30"),
    ],
)
def test_every_rfc_3339_date_time_is_read(updated_at: str, read_as: str) -> None:
    part = read(payment(updated_at=updated_at))
    assert part.outcome is Outcome.OK and part.view is not None, part.error
    assert part.view.updated_at.isoformat() == read_as


@pytest.mark.parametrize(
    "updated_at",
    [
        "1767261600",  # a Unix time in a string
        1767261600,
        "2026-01-01 10:00:00Z",  # a space for the T
        "2026-01-01T10:00:00",  # no offset
        "2026-02-30T10:00:00Z",  # no such day
        "2026-01-01T10:00:61Z",
    ],
)
def test_a_date_time_not_in_rfc_3339_form_is_a_schema_violation(updated_at: object) -> None:
    detail = invalid(read(payment(updated_at=updated_at)), ErrorKind.SCHEMA_VIOLATION)
    assert detail.startswith("updated_at: ")


def test_many_violations_name_the_first_and_count_the_rest() -> None:
    part = read(TransportResponse(200, JSON, b"{}"))  # six required fields missing
    detail = invalid(part, ErrorKind.SCHEMA_VIOLATION)
    assert detail.startswith("workflow_id: ")
    assert detail.count("Field required") == 3
    assert detail.endswith("; and 3 more")


def test_an_unknown_state_of_a_built_in_contract_names_the_expected_states() -> None:
    detail = invalid(read(payment(state="teleported")), ErrorKind.SCHEMA_VIOLATION)
    assert detail.startswith("state: ") and "teleported" in detail
    assert all(f"'{state}'" in detail for state in PAYMENT.states)


def test_an_unknown_state_of_a_declared_participant_names_the_expected_states() -> None:
    answer = TransportResponse(200, JSON, body("flight", "o-1", "lost", seat="12A"))
    detail = invalid(read(answer, FLIGHT), ErrorKind.SCHEMA_VIOLATION)
    assert detail == "state: unknown state 'lost'; expected one of ['pending', 'booked']"
    known = read(TransportResponse(200, JSON, body("flight", "o-1", "booked")), FLIGHT)
    assert known.outcome is Outcome.OK and known.view is not None
    assert known.view.state == "booked"


def test_an_answer_for_another_workflow_is_a_schema_violation() -> None:
    detail = invalid(read(ok("payment", "o-2", "captured")), ErrorKind.SCHEMA_VIOLATION)
    assert "'o-2'" in detail and "'o-1'" in detail and detail.startswith("workflow_id")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_unavailable(status: int) -> None:
    part = read(payment(status=status))
    assert (part.outcome, part.source, part.view) == (Outcome.UNAVAILABLE, None, None)
    assert part.error is not None and part.error.kind is ErrorKind.HTTP_STATUS
    assert part.error.detail == f"HTTP {status}"


def test_a_redirect_is_not_followed() -> None:
    part = read(TransportResponse(302, {"location": "http://elsewhere/"}, b""))
    assert "redirect" in invalid(part, ErrorKind.UNEXPECTED_RESPONSE)


# The Interpret stage


class Call:
    """A fake ``call`` (protection around a transport): records the requests, and
    answers ``reply`` at once or, ``later``, once ``release`` is set."""

    def __init__(self, reply: Reply, *, later: bool) -> None:
        self.reply = reply
        self.later = later
        self.release = asyncio.Event()
        self.requests: list[OutboundRequest] = []

    def __call__(self, request: OutboundRequest) -> Reply | Awaitable[Reply]:
        self.requests.append(request)
        return self._later() if self.later else self.reply

    async def _later(self) -> Reply:
        await self.release.wait()
        return self.reply


class Recorder:
    """An observer keeping what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, Part, float]] = []

    def fetched(self, participant: str, part: Part, seconds: float) -> None:
        self.told.append((participant, part, seconds))


def readings(*values: float) -> Iterator[float]:
    yield from values


def stage(
    call: Call,
    clock: ManualClock | None = None,
    observer: Recorder | None = None,
    timer: Iterator[float] | None = None,
) -> Interpret:
    ticks = timer or readings(100.0, 100.25)
    return Interpret(
        call,
        PAYMENT,
        url="http://p/payments/{workflow_id}/status",
        max_body_bytes=4096,
        clock=clock or ManualClock(AT),
        timer=lambda: next(ticks),
        observer=observer,
    )


async def test_the_request_carries_the_encoded_id_the_headers_and_the_deadline() -> None:
    call = Call(ok("payment", "order:42", "captured"), later=True)
    headers = {"x-tenant-id": "acme", "traceparent": "00-abc-def-01"}
    got = stage(call)(Ask(("acme", "order:42"), 123.5, headers))
    [sent] = call.requests
    assert sent.url == "http://p/payments/order%3A42/status"  # encoded once, not %253A
    assert sent.headers == headers and sent.deadline == 123.5
    assert sent.max_body_bytes == 4096
    call.release.set()
    assert not isinstance(got, Part)
    part = await got
    assert part.outcome is Outcome.OK  # read against the id asked for, not the encoded one


async def test_a_failure_answered_at_once_is_a_part_at_once_and_not_observed() -> None:
    refused = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CIRCUIT_OPEN, "circuit open")
    observer = Recorder()
    got = stage(Call(refused, later=False), observer=observer)(Ask(("acme", "o-1"), 0.0, {}))
    assert isinstance(got, Part)
    assert (got.outcome, got.source, got.view) == (Outcome.UNAVAILABLE, None, None)
    assert got.error is not None
    assert (got.error.kind, got.error.detail) == (ErrorKind.CIRCUIT_OPEN, "circuit open")
    assert observer.told == []


async def test_a_call_answered_later_is_read_and_observed_with_its_duration() -> None:
    clock = ManualClock(AT)
    observer = Recorder()
    call = Call(ok("payment", "o-1", "authorized"), later=True)
    got = stage(call, clock, observer)(Ask(("acme", "o-1"), 0.0, {}))
    assert not isinstance(got, Part)
    clock.advance(0.25)  # the answer arrives a quarter of a second later
    call.release.set()
    part = await got
    assert (part.outcome, part.source, part.fetched_at) == (Outcome.OK, Source.LIVE, AT + 0.25)
    [(participant, told, seconds)] = observer.told
    assert participant == "payment" and told is part
    assert seconds == 0.25  # from before the call to after the reply was read


async def test_a_failure_answered_later_is_observed_too() -> None:
    timed_out = TransportFailure(Outcome.UNAVAILABLE, ErrorKind.TIMEOUT, "no answer within 5 ms")
    observer = Recorder()
    call = Call(timed_out, later=True)
    got = stage(call, observer=observer)(Ask(("acme", "o-1"), 0.0, {}))
    assert not isinstance(got, Part)
    call.release.set()
    part = await got
    assert part.error is not None and part.error.kind is ErrorKind.TIMEOUT
    [(_, told, seconds)] = observer.told
    assert told is part and seconds >= 0
