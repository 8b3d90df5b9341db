"""Seeded decisions: what happens to each order, and how long each step takes.

Every decision is drawn from a random source seeded with the run's seed, the
workflow id and the step, so it does not depend on timing or on the order in
which events arrive: a run is reproducible, and a test can ask what the seed
decided.

Two kinds of fault can be staged, both off unless their rate is set:

- a lost event: the participant that consumes it acknowledges it and never
  acts on it (an at-most-once consumer that acks before it works and then
  crashes), so the workflow stops where it is;
- a rogue event: after an order's parcel is delivered, an ``OutOfStock``
  stamped with its id arrives (a correlation id mixed up by a producer, or an
  old message replayed from a dead-letter queue), and payment refunds an order
  that shipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import MappingProxyType

from ._events import EventType

# The anomaly the aggregator's built-in order rules raise for each staged fault: the
# state each lost event leaves behind lasts, and so does a refund after delivery.
LOST_EVENT_ANOMALY = MappingProxyType(
    {
        EventType.PAYMENT_CAPTURED: "stuck_after_payment",  # inventory never opens a record
        EventType.STOCK_RESERVED: "stuck_after_reservation",  # shipping never opens one
        EventType.OUT_OF_STOCK: "refund_overdue",  # payment never refunds
    }
)
ROGUE_EVENT_ANOMALY = "refund_after_shipment"
_FAULT_RATES = {"lost_event_rate": "lost-event rate", "rogue_event_rate": "rogue-event rate"}
# Where an order stops when the event is lost: the workflow status it keeps.
_STOPS_AT = MappingProxyType(
    {
        EventType.PAYMENT_CAPTURED: "paid",
        EventType.STOCK_RESERVED: "stock_reserved",
        EventType.OUT_OF_STOCK: "compensating",
    }
)


@dataclass(frozen=True, slots=True)
class Chance:
    """The run's seeded choices.

    >>> Chance(seed=7).payment_fails("order-1") == Chance(seed=7).payment_fails("order-1")
    True
    >>> Chance(seed=7).lost_event("order-1") is None  # faults are staged only when asked for
    True
    """

    seed: int = 0
    payment_failure_rate: float = 0.1
    out_of_stock_rate: float = 0.1
    # Shares of the orders whose path can suffer the fault: a lost event needs a
    # captured payment, a rogue one a delivered parcel.
    lost_event_rate: float = 0.0
    rogue_event_rate: float = 0.0
    min_delay: float = 0.5
    max_delay: float = 2.5

    def __post_init__(self) -> None:
        """Refuse choices that could not be honoured (ValueError, in words a command
        line can show as they are)."""
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError("the minimum delay must be between 0 and the maximum delay")
        for name in ("payment_failure_rate", "out_of_stock_rate", *_FAULT_RATES):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"the {_FAULT_RATES.get(name, name)} must be between 0 and 1")
        if self.lost_event_rate + self.rogue_event_rate > 1:
            raise ValueError(
                "the lost-event rate and the rogue-event rate must add up to 1 at most"
            )

    def _draw(self, workflow_id: str, step: str) -> random.Random:
        return random.Random(f"{self.seed}:{workflow_id}:{step}")

    def payment_fails(self, workflow_id: str) -> bool:
        return self._draw(workflow_id, "payment").random() < self.payment_failure_rate

    def out_of_stock(self, workflow_id: str) -> bool:
        return self._draw(workflow_id, "stock").random() < self.out_of_stock_rate

    def delay(self, workflow_id: str, step: str) -> float:
        """Seconds the step takes."""
        return self._draw(workflow_id, f"delay:{step}").uniform(self.min_delay, self.max_delay)

    def _fault(self, workflow_id: str) -> float:
        # One draw decides both kinds, so an order suffers at most one fault.
        return self._draw(workflow_id, "fault").random()

    def lost_event(self, workflow_id: str) -> EventType | None:
        """The event whose consumer drops it for this order, if any."""
        if self.payment_fails(workflow_id) or self._fault(workflow_id) >= self.lost_event_rate:
            return None
        compensated = self.out_of_stock(workflow_id)
        last = EventType.OUT_OF_STOCK if compensated else EventType.STOCK_RESERVED
        return self._draw(workflow_id, "lost").choice((EventType.PAYMENT_CAPTURED, last))

    def rogue_event(self, workflow_id: str) -> EventType | None:
        """The event that arrives for this order after its parcel is delivered, if any."""
        if self.payment_fails(workflow_id) or self.out_of_stock(workflow_id):
            return None
        draw = self._fault(workflow_id)
        if self.lost_event_rate <= draw < self.lost_event_rate + self.rogue_event_rate:
            return EventType.OUT_OF_STOCK
        return None

    def expected_anomaly(self, workflow_id: str) -> str | None:
        """The anomaly code the staged fault makes the aggregator raise, and keep raising."""
        lost = self.lost_event(workflow_id)
        if lost is not None:
            return LOST_EVENT_ANOMALY[lost]
        return None if self.rogue_event(workflow_id) is None else ROGUE_EVENT_ANOMALY

    def expected_outcome(self, workflow_id: str) -> str:
        """The workflow status this seed leads the order to: a terminal one, or the
        status it stops at when an event is lost."""
        if self.payment_fails(workflow_id):
            return "payment_failed"
        lost = self.lost_event(workflow_id)
        if lost is not None:
            return _STOPS_AT[lost]
        if self.out_of_stock(workflow_id):
            return "compensated"
        return "delivered"
