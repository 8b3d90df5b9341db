"""Order fulfilment rules, row by row, and the checks every definition must pass."""

from __future__ import annotations

import itertools

import pytest

from aggregator import (
    ABSENT,
    ORDER_FULFILMENT,
    AnomalyRule,
    ConfigError,
    ParticipantDef,
    StatusRule,
    WorkflowDefinition,
    when,
)
from contracts import BUILTIN_VIEWS

# (payment, inventory, shipping) -> status, decided by.  None: that part is unknown.
STATUS_ROWS = [
    (("captured", "reserved", "delivered"), "delivered", ("shipping",)),
    ((None, None, "delivered"), "delivered", ("shipping",)),
    (("captured", "reserved", "in_transit"), "in_transit", ("shipping",)),
    (("refunded", "out_of_stock", ABSENT), "compensated", ("payment",)),
    ((None, "released", None), "compensated", ("inventory",)),
    (("captured", "out_of_stock", ABSENT), "compensating", ("inventory",)),
    ((None, "out_of_stock", None), "compensating", ("inventory",)),
    (("refunded", None, "cancelled"), "compensated", ("payment",)),
    (("captured", "reserved", "cancelled"), "cancelled", ("shipping",)),
    (("captured", "reserved", "scheduled"), "shipment_scheduled", ("shipping",)),
    (("captured", "reserved", ABSENT), "stock_reserved", ("inventory",)),
    ((None, None, "pending"), "stock_reserved", ("shipping",)),
    (("failed", ABSENT, ABSENT), "payment_failed", ("payment",)),
    (("captured", ABSENT, ABSENT), "paid", ("payment",)),
    ((None, "pending", None), "paid", ("inventory",)),
    (("pending", ABSENT, ABSENT), "payment_pending", ("payment",)),
    (("authorized", ABSENT, ABSENT), "payment_pending", ("payment",)),
    ((ABSENT, ABSENT, ABSENT), "unknown", ()),
    ((None, None, None), "unknown", ()),
    ((None, ABSENT, ABSENT), "unknown", ()),
]

# (payment, inventory, shipping) -> anomaly codes
ANOMALY_ROWS = [
    (("captured", "reserved", "delivered"), []),
    (("authorized", "reserved", "scheduled"), ["shipment_before_payment"]),
    (("failed", "reserved", "delivered"), ["shipment_before_payment"]),
    ((ABSENT, "reserved", "in_transit"), ["shipment_before_payment"]),
    (("captured", "out_of_stock", "scheduled"), ["shipment_without_stock"]),
    (("captured", ABSENT, "in_transit"), ["shipment_without_stock"]),
    (("captured", "released", "delivered"), []),
    (("refunded", "reserved", "in_transit"), ["refund_after_shipment"]),
    (("refunded", "reserved", "delivered"), ["refund_after_shipment"]),
    (("pending", "pending", "in_transit"), ["shipment_before_payment", "shipment_without_stock"]),
    ((None, None, "in_transit"), []),  # unknown parts prove nothing
]


# (payment, inventory, shipping) -> duration anomalies whose condition holds (due or not)
DURATION_ROWS = [
    (("pending", ABSENT, ABSENT), ["payment_stuck"]),
    (("authorized", ABSENT, ABSENT), ["payment_stuck"]),
    (("captured", ABSENT, ABSENT), ["stuck_after_payment"]),
    (("captured", "pending", ABSENT), ["stuck_after_payment"]),
    (("captured", "reserved", ABSENT), ["stuck_after_reservation"]),
    (("captured", "reserved", "pending"), ["stuck_after_reservation"]),
    (("captured", "out_of_stock", ABSENT), ["refund_overdue"]),
    (("captured", "reserved", "scheduled"), []),
    (("refunded", "out_of_stock", ABSENT), []),
    (("failed", ABSENT, ABSENT), []),
    ((None, ABSENT, ABSENT), []),  # unknown parts prove nothing
]


# (payment, inventory, shipping) -> whether the workflow is over (watchers stop)
FINAL_ROWS = [
    (("captured", "reserved", "delivered"), True),
    ((None, None, "delivered"), True),
    (("failed", ABSENT, ABSENT), True),
    (("refunded", "released", ABSENT), True),
    (("refunded", "out_of_stock", ABSENT), False),  # the stock is still to be released
    (("captured", "released", ABSENT), False),
    (("captured", "reserved", "in_transit"), False),
    (("captured", "reserved", "cancelled"), False),
    ((ABSENT, ABSENT, ABSENT), False),
    ((None, None, None), False),
]


def known(states: tuple[str | None, str | None, str | None]) -> dict[str, str | None]:
    return dict(zip(("payment", "inventory", "shipping"), states, strict=True))


@pytest.mark.parametrize(("states", "status", "decided_by"), STATUS_ROWS)
def test_status_rows(
    states: tuple[str | None, str | None, str | None], status: str, decided_by: tuple[str, ...]
) -> None:
    assert ORDER_FULFILMENT.derive(known(states)) == (status, decided_by)


@pytest.mark.parametrize(("states", "codes"), ANOMALY_ROWS)
def test_anomaly_rows(states: tuple[str | None, str | None, str | None], codes: list[str]) -> None:
    assert [a.code for a in ORDER_FULFILMENT.detect(known(states))] == codes


@pytest.mark.parametrize(("states", "codes"), DURATION_ROWS)
def test_duration_rows(states: tuple[str | None, str | None, str | None], codes: list[str]) -> None:
    assert [rule.code for rule in ORDER_FULFILMENT.lasting(known(states))] == codes


@pytest.mark.parametrize(("states", "final"), FINAL_ROWS)
def test_final_rows(states: tuple[str | None, str | None, str | None], final: bool) -> None:
    assert ORDER_FULFILMENT.is_final(known(states)) is final


def test_without_final_conditions_every_participant_must_be_terminal() -> None:
    definition = WorkflowDefinition(
        name="travel",
        participants=(
            ParticipantDef("flight", ("pending", "booked"), frozenset({"booked"})),
            ParticipantDef("hotel", ("pending", "booked"), frozenset({"booked"})),
        ),
        rules=(StatusRule("any", when(flight=("pending", "booked"), hotel=("pending", "booked"))),),
    )
    assert definition.is_final({"flight": "booked", "hotel": "booked"})
    assert not definition.is_final({"flight": "booked", "hotel": "pending"})
    assert not definition.is_final({"flight": "booked", "hotel": None})


def test_a_final_condition_on_an_unknown_state_is_refused() -> None:
    with pytest.raises(ConfigError, match="final condition: flight has no states"):
        WorkflowDefinition(
            name="travel",
            participants=(ParticipantDef("flight", ("booked",)),),
            rules=(StatusRule("booked", when(flight="booked")),),
            final=(when(flight="landed"),),
        )


def test_every_status_and_anomaly_has_a_test_row() -> None:
    assert {row[1] for row in STATUS_ROWS} == set(ORDER_FULFILMENT.statuses)
    tested = {code for _, codes in [*ANOMALY_ROWS, *DURATION_ROWS] for code in codes}
    assert tested == {rule.code for rule in ORDER_FULFILMENT.anomalies}


def test_every_rule_row_is_reachable() -> None:
    """Each rule must decide at least one tested row, or it is dead data."""
    decided = {(status, by) for states, status, by in STATUS_ROWS if by}
    for rule in ORDER_FULFILMENT.rules:
        assert (rule.status, tuple(rule.condition)) in decided, rule


def test_every_state_of_every_contract_model_is_covered_by_a_rule() -> None:
    for name, model in BUILTIN_VIEWS.items():
        participant = ORDER_FULFILMENT.by_name[name]
        assert participant.states == model.states()
        for state in model.states():
            others = {other: None for other in ORDER_FULFILMENT.by_name if other != name}
            status, decided_by = ORDER_FULFILMENT.derive({name: state, **others})
            assert status != "unknown" and decided_by == (name,), (name, state)


def test_every_combination_derives_a_declared_status() -> None:
    choices = [(*p.states, ABSENT, None) for p in ORDER_FULFILMENT.participants]
    for combination in itertools.product(*choices):
        status, _ = ORDER_FULFILMENT.derive(known(combination))  # type: ignore[arg-type]
        assert status in ORDER_FULFILMENT.statuses


def test_a_state_without_a_rule_is_refused() -> None:
    """Adding a state to a model without a rule that covers it fails loudly."""
    payment = ORDER_FULFILMENT.by_name["payment"]
    with pytest.raises(
        ConfigError, match=r"no status rule covers the states \['payment.disputed'\]"
    ):
        WorkflowDefinition(
            name="order_fulfilment",
            participants=(
                ParticipantDef("payment", (*payment.states, "disputed")),
                *ORDER_FULFILMENT.participants[1:],
            ),
            rules=ORDER_FULFILMENT.rules,
        )


FLIGHT = ParticipantDef("flight", ("pending", "booked"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"participants": ()}, "declares no participants"),
        ({"participants": (FLIGHT, FLIGHT)}, "declared twice"),
        ({"participants": (ParticipantDef("flight", ()),)}, "declares no states"),
        (
            {"participants": (ParticipantDef("flight", ("booked",), frozenset({"landed"})),)},
            "terminal states",
        ),
        ({"rules": (StatusRule("x", when(hotel="booked")),)}, "undeclared participant 'hotel'"),
        ({"rules": (StatusRule("x", when(flight="landed")),)}, r"has no states \['landed'\]"),
        ({"rules": (StatusRule("x", {}),)}, "names no participant"),
        (
            {"anomalies": (AnomalyRule("odd", "odd", when(flight="lost")),)},
            "anomaly 'odd'",
        ),
    ],
)
def test_definition_mistakes_are_named(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "name": "travel",
        "participants": (FLIGHT,),
        "rules": (StatusRule("booked", when(flight=("booked", "pending"))),),
        **kwargs,
    }
    with pytest.raises(ConfigError, match=message):
        WorkflowDefinition(**fields)  # type: ignore[arg-type]
