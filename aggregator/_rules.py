"""Workflow definitions: rules as data, read top to bottom, first match wins.

A definition names its participants and their states, maps combinations of
states to a workflow status, and lists the combinations that are anomalies.
A condition names, for some participants, the states it accepts; a
participant whose state is not known (unavailable, invalid) matches no
condition, so a status is only derived from what is known. The pseudo-state
``absent`` matches a participant that answered "no record of this workflow".

An anomaly rule with ``after_ms`` is a duration: it is raised only once its
condition has held that long, counted from the latest ``updated_at`` of the
parts it names (a workflow stuck between two steps).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from contracts import (
    Anomaly,
    GenericView,
    InventoryView,
    ParticipantView,
    PaymentView,
    ShippingView,
)

from ._errors import ConfigError

ABSENT = "absent"
MINUTE_MS = 60_000
DEFAULT_WINDOW_MS = 100  # parts an anomaly rests on are fetched within it
DEFAULT_CLOCK_TOLERANCE_MS = 5_000  # how far ahead a participant's clock may run

Condition = Mapping[str, frozenset[str]]
_MEMO_LIMIT = 4096  # combinations of states remembered per definition
Known = Mapping[str, str | None]


def when(**states: str | Iterable[str]) -> Condition:
    """Build a condition: ``when(shipping="delivered", payment=("pending", "failed"))``."""
    return MappingProxyType(
        {
            name: frozenset((accepted,) if isinstance(accepted, str) else accepted)
            for name, accepted in states.items()
        }
    )


def _matches(condition: Condition, known: Known) -> bool:
    return all(known.get(name) in accepted for name, accepted in condition.items())


@dataclass(frozen=True, slots=True)
class ParticipantDef:
    """A participant of a workflow: its states, which of them are final, its contract model."""

    name: str
    states: tuple[str, ...]
    terminal: frozenset[str] = frozenset()
    model: type[ParticipantView] = GenericView


@dataclass(frozen=True, slots=True)
class StatusRule:
    status: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    """A combination of states that should not be; with ``after_ms``, one that
    should not last that long (milliseconds since the latest ``updated_at`` of
    the parts the condition names)."""

    code: str
    message: str
    condition: Condition
    after_ms: int | None = None
    anomaly: Anomaly = field(init=False, repr=False, compare=False)  # what it raises

    def __post_init__(self) -> None:
        raised = Anomaly(code=self.code, message=self.message, participants=tuple(self.condition))
        object.__setattr__(self, "anomaly", raised)


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """A workflow's participants and the rules that derive its status.

    >>> definition = WorkflowDefinition(
    ...     name="travel",
    ...     participants=(ParticipantDef("flight", ("pending", "booked")),),
    ...     rules=(
    ...         StatusRule("booked", when(flight="booked")),
    ...         StatusRule("booking", when(flight="pending")),
    ...     ),
    ... )
    >>> definition.derive({"flight": "booked"})
    ('booked', ('flight',))
    """

    name: str
    participants: tuple[ParticipantDef, ...]
    rules: tuple[StatusRule, ...]
    anomalies: tuple[AnomalyRule, ...] = ()
    fallback: str = "unknown"
    # When nothing more will happen: any condition matching (every participant in a
    # terminal state when none is declared). Watchers are told, and stop.
    final: tuple[Condition, ...] = ()
    # Parts an anomaly rests on must have been fetched within this many seconds of
    # each other for it to be confirmed (see ``judge``).
    window: float = DEFAULT_WINDOW_MS / 1000
    # How far a participant's clock may run ahead of ours: an ``updated_at`` further
    # in the future than this never starts a duration.
    clock_tolerance: float = DEFAULT_CLOCK_TOLERANCE_MS / 1000
    by_name: Mapping[str, ParticipantDef] = field(init=False, repr=False, compare=False)
    # derive() and matching_anomalies() are pure and see few distinct combinations
    # of states.
    _derived: dict[tuple[tuple[str, str | None], ...], tuple[str, tuple[str, ...]]] = field(
        init=False, repr=False, compare=False
    )
    _detected: dict[
        tuple[tuple[str, str | None], ...], tuple[tuple[Anomaly, ...], tuple[AnomalyRule, ...]]
    ] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {participant.name: participant for participant in self.participants}
        object.__setattr__(self, "by_name", MappingProxyType(by_name))
        object.__setattr__(self, "_derived", {})
        object.__setattr__(self, "_detected", {})
        where = f"workflow {self.name!r}"
        if not self.participants:
            raise ConfigError(f"{where}: declares no participants")
        if len(by_name) != len(self.participants):
            raise ConfigError(f"{where}: a participant is declared twice")
        for participant in self.participants:
            if not participant.states:
                raise ConfigError(f"{where}: participant {participant.name!r} declares no states")
            unknown = participant.terminal - set(participant.states)
            if unknown:
                raise ConfigError(
                    f"{where}: participant {participant.name!r} has terminal states "
                    f"{sorted(unknown)} that it does not declare"
                )
        for rule in self.rules:
            self._check_condition(f"{where}, rule {rule.status!r}", rule.condition)
        codes = [anomaly.code for anomaly in self.anomalies]
        if len(set(codes)) != len(codes):
            raise ConfigError(f"{where}: an anomaly code is declared twice")
        for anomaly in self.anomalies:
            self._check_condition(f"{where}, anomaly {anomaly.code!r}", anomaly.condition)
            if anomaly.after_ms is not None and anomaly.after_ms <= 0:
                raise ConfigError(f"{where}, anomaly {anomaly.code!r}: after_ms must be positive")
        for condition in self.final:
            self._check_condition(f"{where}, final condition", condition)
        uncovered = [
            f"{participant.name}.{state}"
            for participant in self.participants
            for state in participant.states
            if not any(state in rule.condition.get(participant.name, ()) for rule in self.rules)
        ]
        if uncovered:
            raise ConfigError(f"{where}: no status rule covers the states {uncovered}")

    def _check_condition(self, where: str, condition: Condition) -> None:
        if not condition:
            raise ConfigError(f"{where}: the condition names no participant")
        for name, accepted in condition.items():
            participant = self.by_name.get(name)
            if participant is None:
                raise ConfigError(f"{where}: names the undeclared participant {name!r}")
            unknown = accepted - {*participant.states, ABSENT}
            if unknown or not accepted:
                raise ConfigError(
                    f"{where}: {name} has no states {sorted(unknown)}; "
                    f"it declares {list(participant.states)} (and {ABSENT!r})"
                )

    def covered_states(self, participant: str) -> frozenset[str]:
        """The states of ``participant`` some status rule names: the ones its answers
        may be in without being marked invalid. KeyError for a participant not here."""
        declared = self.by_name[participant].states
        return frozenset(
            state
            for state in declared
            if any(state in rule.condition.get(participant, ()) for rule in self.rules)
        )

    @property
    def statuses(self) -> tuple[str, ...]:
        """Every status this definition can derive, in rule order, the fallback last."""
        return tuple(dict.fromkeys([*(rule.status for rule in self.rules), self.fallback]))

    def derive(self, known: Known) -> tuple[str, tuple[str, ...]]:
        """The status of the first matching rule, and the participants it was decided by."""
        key = tuple(known.items())
        found = self._derived.get(key)
        if found is None:
            found = self._derive(known)
            if len(self._derived) < _MEMO_LIMIT:
                self._derived[key] = found
        return found

    def _derive(self, known: Known) -> tuple[str, tuple[str, ...]]:
        for rule in self.rules:
            if _matches(rule.condition, known):
                return rule.status, tuple(rule.condition)
        return self.fallback, ()

    def is_final(self, known: Known) -> bool:
        """Whether the workflow is over in these states: a ``final`` condition matches,
        or, when none is declared, every participant is in one of its terminal states."""
        if self.final:
            return any(_matches(condition, known) for condition in self.final)
        return all(known.get(p.name) in p.terminal for p in self.participants)

    def detect(self, known: Known) -> tuple[Anomaly, ...]:
        """Every anomaly rule without a duration that matches."""
        return self.matching_anomalies(known)[0]

    def lasting(self, known: Known) -> tuple[AnomalyRule, ...]:
        """Every anomaly rule with a duration whose condition matches (due or not)."""
        return self.matching_anomalies(known)[1]

    def matching_anomalies(
        self, known: Known
    ) -> tuple[tuple[Anomaly, ...], tuple[AnomalyRule, ...]]:
        """``detect`` and ``lasting`` at once: the anomalies without a duration that
        match, and the rules with one whose condition matches."""
        key = tuple(known.items())
        found = self._detected.get(key)
        if found is None:
            matching = [rule for rule in self.anomalies if _matches(rule.condition, known)]
            found = (
                tuple(rule.anomaly for rule in matching if rule.after_ms is None),
                tuple(rule for rule in matching if rule.after_ms is not None),
            )
            if len(self._detected) < _MEMO_LIMIT:
                self._detected[key] = found
        return found

    def with_anomaly_settings(
        self, *, window: float, clock_tolerance: float, after_ms: Mapping[str, int]
    ) -> WorkflowDefinition:
        """This definition with the operator's anomaly settings: the confirmation
        window, the clock tolerance, and durations overriding the rules' own by code."""
        timed = {rule.code for rule in self.anomalies if rule.after_ms is not None}
        unknown = sorted(set(after_ms) - timed)
        if unknown:
            raise ConfigError(
                f"anomalies.after_ms: workflow {self.name!r} has no duration anomalies "
                f"{unknown}; it has {sorted(timed)}"
            )
        anomalies = tuple(
            replace(rule, after_ms=after_ms[rule.code]) if rule.code in after_ms else rule
            for rule in self.anomalies
        )
        return replace(self, anomalies=anomalies, window=window, clock_tolerance=clock_tolerance)


ACTIVE_SHIPMENT = ("scheduled", "in_transit", "delivered")

ORDER_FULFILMENT = WorkflowDefinition(
    name="order_fulfilment",
    participants=(
        ParticipantDef(
            "payment", PaymentView.states(), frozenset({"failed", "refunded"}), PaymentView
        ),
        ParticipantDef("inventory", InventoryView.states(), frozenset({"released"}), InventoryView),
        ParticipantDef(
            "shipping", ShippingView.states(), frozenset({"delivered", "cancelled"}), ShippingView
        ),
    ),
    # Read from the most advanced status down. A record's existence implies the events
    # before it: inventory only opens a record after the payment is captured, shipping
    # only after the stock is reserved.
    rules=(
        StatusRule("delivered", when(shipping="delivered")),
        StatusRule("in_transit", when(shipping="in_transit")),
        StatusRule("compensated", when(payment="refunded")),
        StatusRule("compensated", when(inventory="released")),
        StatusRule("compensating", when(inventory="out_of_stock")),
        StatusRule("cancelled", when(shipping="cancelled")),
        StatusRule("shipment_scheduled", when(shipping="scheduled")),
        StatusRule("stock_reserved", when(inventory="reserved")),
        StatusRule("stock_reserved", when(shipping="pending")),
        StatusRule("payment_failed", when(payment="failed")),
        StatusRule("paid", when(payment="captured")),
        StatusRule("paid", when(inventory="pending")),
        StatusRule("payment_pending", when(payment=("pending", "authorized"))),
    ),
    # Delivered, the payment failed, or the compensation done (refund, then release).
    final=(
        when(shipping="delivered"),
        when(payment="failed"),
        when(payment="refunded", inventory="released"),
    ),
    anomalies=(
        AnomalyRule(
            "shipment_before_payment",
            "the shipment is active or delivered but the payment is not captured",
            when(shipping=ACTIVE_SHIPMENT, payment=("pending", "authorized", "failed", ABSENT)),
        ),
        AnomalyRule(
            "shipment_without_stock",
            "the shipment is active but no stock is reserved for it",
            when(
                shipping=("scheduled", "in_transit"),
                inventory=("pending", "out_of_stock", "released", ABSENT),
            ),
        ),
        AnomalyRule(
            "refund_after_shipment",
            "the payment was refunded while the parcel is in transit or delivered",
            when(payment="refunded", shipping=("in_transit", "delivered")),
        ),
        # Stuck between two steps: each step takes seconds, so these are generous.
        AnomalyRule(
            "payment_stuck",
            "the payment has been pending or authorized too long",
            when(payment=("pending", "authorized")),
            after_ms=15 * MINUTE_MS,
        ),
        AnomalyRule(
            "stuck_after_payment",
            "the payment was captured but the stock has not been reserved or found missing",
            when(payment="captured", inventory=(ABSENT, "pending")),
            after_ms=5 * MINUTE_MS,
        ),
        AnomalyRule(
            "stuck_after_reservation",
            "the stock is reserved but no parcel has been scheduled",
            when(inventory="reserved", shipping=(ABSENT, "pending")),
            after_ms=5 * MINUTE_MS,
        ),
        AnomalyRule(
            "refund_overdue",
            "the stock was found missing but the payment has not been refunded",
            when(inventory="out_of_stock", payment="captured"),
            after_ms=5 * MINUTE_MS,
        ),
    ),
)

BUILTIN_DEFINITIONS: Mapping[str, WorkflowDefinition] = MappingProxyType(
    {ORDER_FULFILMENT.name: ORDER_FULFILMENT}
)
