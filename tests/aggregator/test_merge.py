"""The pure merge: parts and a time in, one WorkflowStatus out."""

from __future__ import annotations

from datetime import UTC, datetime

from aggregator import ORDER_FULFILMENT, Part, merge
from contracts import (
    ErrorKind,
    InventoryView,
    Outcome,
    PartError,
    ParticipantView,
    PaymentView,
    ShippingView,
    Source,
    WorkflowStatus,
)
from tests.helpers import body

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def live(participant: str, state: str, *, version: int = 1, age: float = 0.0) -> Part:
    model: dict[str, type[ParticipantView]] = {
        "payment": PaymentView,
        "inventory": InventoryView,
        "shipping": ShippingView,
    }
    view = model[participant].model_validate_json(body(participant, "o-1", state, version))
    return Part(Outcome.OK, Source.LIVE, view, NOW - age)


def unavailable(kind: ErrorKind = ErrorKind.TIMEOUT) -> Part:
    return Part(Outcome.UNAVAILABLE, error=PartError(kind=kind, detail="no answer in time"))


def stale(held: Part, kind: ErrorKind, detail: str, outcome: Outcome = Outcome.UNAVAILABLE) -> Part:
    """``held`` shown past its time to live, with why the live fetch did not replace it."""
    error = PartError(kind=kind, detail=detail)
    return Part(outcome, Source.STALE, held.view, held.fetched_at, error)


ABSENT_PART = Part(Outcome.NOT_FOUND, Source.LIVE, fetched_at=NOW)


def run(**parts: Part) -> WorkflowStatus:
    return merge(ORDER_FULFILMENT, "o-1", parts, NOW)


def test_all_live_is_complete() -> None:
    status = run(
        payment=live("payment", "captured"),
        inventory=live("inventory", "reserved"),
        shipping=live("shipping", "in_transit"),
    )
    assert status.status == "in_transit"
    assert status.complete is True
    assert status.derived_from == ("shipping",)
    assert status.anomalies == ()
    assert status.generated_at == datetime(2026, 1, 1, tzinfo=UTC)
    shipping = status.participants["shipping"]
    assert shipping.outcome == Outcome.OK and shipping.source == Source.LIVE
    assert shipping.state == "in_transit" and shipping.version == 1
    assert shipping.view is not None and shipping.view["tracking_number"] == "PC123"
    assert shipping.age_ms == 0


def test_a_missing_part_still_derives_from_what_is_known() -> None:
    status = run(
        payment=unavailable(),
        inventory=live("inventory", "reserved"),
        shipping=live("shipping", "delivered"),
    )
    assert status.status == "delivered"
    assert status.complete is False
    payment = status.participants["payment"]
    assert payment.source is None and payment.view is None and payment.age_ms is None
    assert payment.error == PartError(kind=ErrorKind.TIMEOUT, detail="no answer in time")


def test_not_found_is_an_answer_and_keeps_the_status_complete() -> None:
    status = run(payment=live("payment", "captured"), inventory=ABSENT_PART, shipping=ABSENT_PART)
    assert status.status == "paid"
    assert status.complete is True
    assert status.participants["inventory"].outcome == Outcome.NOT_FOUND


def test_cache_and_stale_parts_carry_their_age() -> None:
    cached = live("payment", "captured", age=1.5)
    held = live("inventory", "reserved", age=30.0)
    status = run(
        payment=Part(cached.outcome, Source.CACHE, cached.view, cached.fetched_at),
        inventory=stale(held, ErrorKind.HTTP_STATUS, "HTTP 503"),
        shipping=ABSENT_PART,
    )
    assert status.participants["payment"].age_ms == 1500
    assert status.participants["payment"].fetched_at == datetime(
        2025, 12, 31, 23, 59, 58, 500000, UTC
    )
    inventory = status.participants["inventory"]
    assert inventory.source == Source.STALE and inventory.age_ms == 30_000
    assert inventory.state == "reserved"
    assert status.status == "stock_reserved"  # a stale state still counts as known
    assert status.complete is False


def test_an_invalid_part_is_left_out_of_the_derivation() -> None:
    invalid = Part(
        Outcome.INVALID,
        error=PartError(kind=ErrorKind.SCHEMA_VIOLATION, detail="state: unknown state"),
    )
    status = run(payment=live("payment", "captured"), inventory=invalid, shipping=ABSENT_PART)
    assert status.status == "paid"
    assert status.derived_from == ("payment",)
    assert status.participants["inventory"].outcome == Outcome.INVALID


def test_contradictions_are_reported() -> None:
    status = run(
        payment=live("payment", "authorized"),
        inventory=live("inventory", "reserved"),
        shipping=live("shipping", "scheduled"),
    )
    assert [a.code for a in status.anomalies] == ["shipment_before_payment"]
    assert status.anomalies[0].participants == ("shipping", "payment")


def test_stale_parts_decide_the_status_but_raise_no_anomaly() -> None:
    held = live("payment", "authorized", age=4.0)
    status = run(
        payment=stale(held, ErrorKind.TIMEOUT, "no answer in time"),
        inventory=live("inventory", "reserved"),
        shipping=live("shipping", "scheduled"),
    )
    assert status.status == "shipment_scheduled"
    assert status.anomalies == ()  # authorized 4 s ago says nothing about now


def test_a_version_regression_becomes_an_anomaly() -> None:
    held = live("payment", "captured", version=5, age=3.0)
    detail = "answered version 3, older than 5"
    regressed = stale(held, ErrorKind.VERSION_REGRESSION, detail, outcome=Outcome.OK)
    status = run(payment=regressed, inventory=ABSENT_PART, shipping=ABSENT_PART)
    assert status.participants["payment"].version == 5
    assert [(a.code, a.participants) for a in status.anomalies] == [
        ("version_regression", ("payment",))
    ]


def test_merge_is_deterministic() -> None:
    parts = {
        "payment": live("payment", "captured", age=0.25),
        "inventory": unavailable(),
        "shipping": ABSENT_PART,
    }
    first = merge(ORDER_FULFILMENT, "o-1", parts, NOW)
    assert merge(ORDER_FULFILMENT, "o-1", parts, NOW) == first
    assert first.model_dump_json() == merge(ORDER_FULFILMENT, "o-1", parts, NOW).model_dump_json()
