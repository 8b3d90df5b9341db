"""Anomalies you can act on: confirmed on parts of one moment, durations, timelines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aggregator import (
    ORDER_FULFILMENT,
    ConfigError,
    Part,
    TransportFailure,
    TransportResponse,
    judge,
)
from aggregator.testing import ManualClock
from contracts import (
    ErrorKind,
    InventoryView,
    Outcome,
    PaymentView,
    ShippingView,
    Source,
    WorkflowStatus,
)
from tests.helpers import JSON, FakeNetwork, all_states, body, make_aggregator, settings

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, ManualClock's start
MODELS: dict[str, Any] = {
    "payment": PaymentView,
    "inventory": InventoryView,
    "shipping": ShippingView,
}


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def part(
    name: str,
    state: str,
    *,
    fetched: float = NOW,
    updated: float = NOW - 60,
    source: Source = Source.CACHE,
) -> Part:
    view = MODELS[name].model_validate_json(body(name, "o-1", state, updated_at=stamp(updated)))
    return Part(Outcome.OK, source, view, fetched)


def absent(*, fetched: float = NOW) -> Part:
    return Part(Outcome.NOT_FOUND, Source.CACHE, None, fetched)


def answered(name: str, state: str, *, updated: float, version: int = 1) -> TransportResponse:
    return TransportResponse(
        200, JSON, body(name, "o-1", state, version, updated_at=stamp(updated))
    )


def no_stock(*, cached_for: float) -> dict[str, Part]:
    """Shipping scheduled, fetched now; payment captured and inventory pending, both
    from the cache, fetched ``cached_for`` seconds ago."""
    return {
        "payment": part("payment", "captured", fetched=NOW - cached_for),
        "inventory": part("inventory", "pending", fetched=NOW - cached_for),
        "shipping": part("shipping", "scheduled", fetched=NOW, source=Source.LIVE),
    }


# -- judge, pure ------------------------------------------------------------------


def test_an_anomaly_on_parts_of_one_moment_is_confirmed() -> None:
    parts = no_stock(cached_for=0.05)
    verdict = judge(ORDER_FULFILMENT, parts, NOW)
    assert [(a.code, a.confirmed) for a in verdict.anomalies] == [("shipment_without_stock", True)]
    assert verdict.recheck == frozenset()


def test_an_anomaly_on_an_older_part_is_unconfirmed_and_names_it_to_ask_again() -> None:
    parts = no_stock(cached_for=1.2)
    verdict = judge(ORDER_FULFILMENT, parts, NOW)
    assert [(a.code, a.confirmed) for a in verdict.anomalies] == [("shipment_without_stock", False)]
    assert verdict.recheck == {"inventory"}  # payment is not in this anomaly
    # asked again in vain: reported as it stands, unconfirmed, and not asked again
    again = judge(ORDER_FULFILMENT, parts, NOW, unconfirmable=["inventory"])
    assert [(a.code, a.confirmed) for a in again.anomalies] == [("shipment_without_stock", False)]
    assert again.recheck == frozenset()


def test_the_window_is_a_setting() -> None:
    definition = settings(anomalies={"window_ms": 2000}).definition()
    parts = no_stock(cached_for=1.2)
    verdict = judge(definition, parts, NOW)
    assert [(a.code, a.confirmed) for a in verdict.anomalies] == [("shipment_without_stock", True)]


def test_stale_parts_raise_no_anomaly_of_either_kind() -> None:
    parts = {
        "payment": part("payment", "captured", updated=NOW - 3600),
        "inventory": Part(
            Outcome.UNAVAILABLE,
            Source.STALE,
            part("inventory", "pending").view,
            NOW - 30,
        ),
        "shipping": part("shipping", "scheduled", source=Source.LIVE),
    }
    assert judge(ORDER_FULFILMENT, parts, NOW).anomalies == ()


def test_a_duration_anomaly_falls_due_after_its_time_from_the_latest_update() -> None:
    after = 300.0  # stuck_after_payment's default, five minutes
    parts = {
        "payment": part("payment", "captured", updated=NOW - 400),
        "inventory": part("inventory", "pending", updated=NOW - 100),  # the latest: counts
        "shipping": absent(),
    }
    verdict = judge(ORDER_FULFILMENT, parts, NOW)
    assert verdict.anomalies == ()
    assert verdict.due == NOW - 100 + after
    later = judge(ORDER_FULFILMENT, parts, verdict.due)
    assert [(a.code, a.participants) for a in later.anomalies] == [
        ("stuck_after_payment", ("payment", "inventory"))
    ]
    assert later.due == float("inf")


def test_an_absent_part_has_no_time_the_others_do() -> None:
    parts = {
        "payment": part("payment", "captured", updated=NOW - 301),
        "inventory": absent(),
        "shipping": absent(),
    }
    assert [a.code for a in judge(ORDER_FULFILMENT, parts, NOW).anomalies] == [
        "stuck_after_payment"
    ]


def test_an_update_from_the_future_beyond_the_tolerance_starts_no_duration() -> None:
    definition = settings(
        anomalies={"clock_tolerance_ms": 5000, "after_ms": {"payment_stuck": 1000}}
    ).definition()
    ahead = {
        "payment": part("payment", "pending", updated=NOW + 6),
        "inventory": absent(),
        "shipping": absent(),
    }
    verdict = judge(definition, ahead, NOW)
    assert verdict.anomalies == () and verdict.due == float("inf")
    assert judge(definition, ahead, NOW + 60).anomalies != ()  # once within it, it counts
    within = {**ahead, "payment": part("payment", "pending", updated=NOW + 4)}
    assert judge(definition, within, NOW).due == NOW + 5  # measured from it as it is


def test_durations_are_settings_and_unknown_codes_are_refused() -> None:
    definition = settings(anomalies={"after_ms": {"stuck_after_payment": 2000}}).definition()
    parts = {
        "payment": part("payment", "captured", updated=NOW - 2),
        "inventory": absent(),
        "shipping": absent(),
    }
    assert [a.code for a in judge(definition, parts, NOW).anomalies] == ["stuck_after_payment"]
    with pytest.raises(ValueError, match=r"no duration anomalies \['shipment_without_stock'\]"):
        settings(anomalies={"after_ms": {"shipment_without_stock": 1000}})
    with pytest.raises(ValueError, match=r"anomalies\.after_ms\.payment_stuck"):
        settings(anomalies={"after_ms": {"payment_stuck": 0}})


def test_a_declared_workflow_declares_durations() -> None:
    declared = {
        "travel": {
            "participants": {"flight": {"states": ["pending", "booked"]}},
            "rules": [
                {"status": "booked", "when": {"flight": ["booked"]}},
                {"status": "booking", "when": {"flight": ["pending"]}},
            ],
            "anomalies": [
                {
                    "code": "booking_stuck",
                    "message": "the flight is still pending",
                    "when": {"flight": ["pending"]},
                    "after_ms": 60000,
                }
            ],
        }
    }
    chosen = settings(
        {"flight": "http://flight.test/flights/{workflow_id}"},
        workflow="travel",
        workflows=declared,
        anomalies={"after_ms": {"booking_stuck": 1000}},
    )
    (rule,) = chosen.definition().anomalies
    assert (rule.code, rule.after_ms) == ("booking_stuck", 1000)
    with pytest.raises(ConfigError, match="declared twice"):
        chosen.definition().__class__(
            name="x",
            participants=chosen.definition().participants,
            rules=chosen.definition().rules,
            anomalies=(rule, rule),
        )


def test_since_and_the_timeline() -> None:
    parts = {
        "payment": part("payment", "captured", updated=NOW - 30),
        "inventory": part("inventory", "reserved", updated=NOW - 20),
        "shipping": part("shipping", "scheduled", updated=NOW - 25),
    }
    verdict = judge(ORDER_FULFILMENT, parts, NOW)
    assert verdict.status == "shipment_scheduled" and verdict.derived_from == ("shipping",)
    assert verdict.since is not None and verdict.since.timestamp() == NOW - 25
    assert [(name, state) for name, state, _ in verdict.timeline] == [
        ("payment", "captured"),
        ("shipping", "scheduled"),
        ("inventory", "reserved"),
    ]
    nothing = judge(ORDER_FULFILMENT, {"payment": absent()}, NOW)
    assert nothing.since is None and nothing.timeline == ()


# -- the aggregator: asking again ------------------------------------------------


async def test_a_contradiction_from_a_cached_part_is_withdrawn_after_asking_again() -> None:
    """The demo's false alarm: inventory's cached part, 1.2 s old, says pending;
    shipping, fetched live, says scheduled: inventory reserved the stock in between."""
    network, clock = FakeNetwork(), ManualClock()
    updated = NOW - 10
    all_states(network, "o-1", payment="captured")
    network.set("inventory", answered("inventory", "pending", updated=updated))
    network.set("shipping", TransportResponse(404, {**JSON, "cache-control": "no-store"}, b"{}"))
    async with make_aggregator(network, clock) as agg:
        assert (await agg.status("o-1")).status == "paid"
        clock.advance(1.2)
        network.set("inventory", answered("inventory", "reserved", updated=updated + 1, version=2))
        network.set("shipping", answered("shipping", "scheduled", updated=updated + 1.1))
        status = await agg.status("o-1")
        assert status.status == "shipment_scheduled"
        assert status.anomalies == ()
        assert status.participants["inventory"].state == "reserved"
        assert status.participants["inventory"].source is Source.LIVE
        assert network.calls("inventory") == 2
        assert agg.stats()["inventory"].cache_hits == 0  # the part shown came live
        assert agg.anomalies.withdrawn_by == {"shipment_without_stock": 1}
        assert agg.anomalies.raised_by == {}
        # the part asked again replaced the cached one
        again = await agg.status("o-1")
        assert again.participants["inventory"].state == "reserved"
        assert network.calls("inventory") == 2


async def test_a_true_anomaly_costs_one_call_per_participant_per_time_to_live() -> None:
    """payment's part is final (cached for terminal_ttl_ms, 10 s), shipping's is not
    (2 s): each time shipping's part is fetched anew, payment's older part is asked
    again, once; the parts then agree in the cache until the next expiry."""
    network, clock = FakeNetwork(), ManualClock()
    network.set("payment", answered("payment", "refunded", updated=NOW - 5))
    network.set("inventory", answered("inventory", "reserved", updated=NOW - 5))
    network.set("shipping", answered("shipping", "in_transit", updated=NOW - 5))
    async with make_aggregator(network, clock) as agg:
        for _ in range(100):  # 10 s, a request every 0.1 s
            status = await agg.status("o-1")
            assert [(a.code, a.confirmed) for a in status.anomalies] == [
                ("refund_after_shipment", True)
            ]
            clock.advance(0.1)
        assert network.calls("shipping") == 5  # every 2 s
        # payment: its first fetch, then asked again with each later shipping fetch
        assert network.calls("payment") == 5
        assert agg.anomalies.withdrawn_by == {}


async def test_when_asking_again_fails_the_anomaly_is_reported_unconfirmed() -> None:
    network, clock = FakeNetwork(), ManualClock()
    all_states(network, "o-1", payment="captured")
    network.set("inventory", answered("inventory", "pending", updated=NOW - 10))
    network.set("shipping", TransportResponse(404, {**JSON, "cache-control": "no-store"}, b"{}"))
    async with make_aggregator(network, clock) as agg:
        await agg.status("o-1")
        clock.advance(1.2)
        network.set(
            "inventory",
            TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "refused", True),
        )
        network.set("shipping", answered("shipping", "scheduled", updated=NOW))
        status = await agg.status("o-1")
        assert [(a.code, a.confirmed) for a in status.anomalies] == [
            ("shipment_without_stock", False)
        ]
        # the part shown is the one the anomaly rests on, from the cache
        assert status.participants["inventory"].state == "pending"
        assert status.participants["inventory"].source is Source.CACHE
        assert agg.anomalies.raised_by == {("shipment_without_stock", False): 1}
        # tentative: never served again (the next request tries again), nor kept
        # downstream (no freshness for max-age)
        assert agg.cached_answer("o-1") is None
        asked = network.calls("inventory")
        answer = await agg.answer("o-1")
        assert answer.rendering.tentative and answer.freshness() == 0.0
        assert network.calls("inventory") > asked


async def test_a_reused_answer_shows_a_duration_anomaly_once_it_falls_due() -> None:
    network, clock = FakeNetwork(), ManualClock()
    network.set("payment", answered("payment", "captured", updated=NOW - 0.5))
    network.set("inventory", TransportResponse(404, JSON, b"{}"))
    network.set("shipping", TransportResponse(404, JSON, b"{}"))
    async with make_aggregator(
        network, clock, anomalies={"after_ms": {"stuck_after_payment": 1000}}
    ) as agg:
        assert (await agg.answer("o-1")).status().anomalies == ()  # parts fetched
        clock.advance(0.1)
        answer = await agg.answer("o-1")  # from the cache: kept to be served again
        assert answer.status().anomalies == ()
        assert answer.freshness() == pytest.approx(0.4)  # due in 0.4 s, not 1.9 s
        clock.advance(0.3)
        assert agg.cached_answer("o-1") is not None  # within the ttl, not yet due
        clock.advance(0.1)
        assert agg.cached_answer("o-1") is None  # due: made again from the same parts
        status = WorkflowStatus.model_validate_json((await agg.answer("o-1")).json())
        assert [a.code for a in status.anomalies] == ["stuck_after_payment"]
        assert network.calls("payment") == 1  # the parts were still fresh


async def test_the_answer_json_carries_since_and_the_timeline() -> None:
    network, clock = FakeNetwork(), ManualClock()
    network.set("payment", answered("payment", "captured", updated=NOW - 30))
    network.set("inventory", answered("inventory", "reserved", updated=NOW - 20))
    network.set("shipping", TransportResponse(404, JSON, b"{}"))
    async with make_aggregator(network, clock) as agg:
        answer = await agg.answer("o-1")
        status = WorkflowStatus.model_validate_json(answer.json())
        assert status == answer.status()
        assert status.since == datetime.fromtimestamp(NOW - 20, UTC)
        assert [(s.participant, s.state) for s in status.timeline] == [
            ("payment", "captured"),
            ("inventory", "reserved"),
        ]
