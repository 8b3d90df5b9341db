"""Staged faults as they take effect: when an event was lost, when a rogue one came.

The demo compares what the aggregator raises with what was staged; this is the
staged side, told at the moment each fault happens, so it knows when the
anomaly should appear.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ._bus import Bus
from ._chance import LOST_EVENT_ANOMALY, Chance
from ._events import Event, EventType

log = logging.getLogger("participants.staging")


class FaultKind(StrEnum):
    LOST_EVENT = "lost_event"
    ROGUE_EVENT = "rogue_event"


@dataclass(frozen=True, slots=True)
class StagedFault:
    """A fault that has happened to an order: which, to which event, and when
    (``at`` on the log's clock, monotonic seconds by default)."""

    workflow_id: str
    kind: FaultKind
    event: EventType
    at: float


class Staging:
    """The faults that have taken effect, one per order (a duplicate delivery of the
    same fault keeps the first time).

    >>> staging = Staging(clock=lambda: 5.0)
    >>> staging.record("order-1", FaultKind.LOST_EVENT, EventType.STOCK_RESERVED)
    True
    >>> staging.faults["order-1"].at
    5.0
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.faults: dict[str, StagedFault] = {}
        self._clock = clock

    def record(self, workflow_id: str, kind: FaultKind, event: EventType) -> bool:
        """Note the fault; False when it was already noted for this order."""
        if workflow_id in self.faults:
            return False
        self.faults[workflow_id] = StagedFault(workflow_id, kind, event, self._clock())
        log.info("staged %s: %s for %s", kind, event, workflow_id)
        return True

    def observe(self, bus: Bus, chance: Chance) -> None:
        """Note each lost event as it is published: its consumer drops it when it
        arrives, so the order stops from then on."""

        async def on_event(event: Event) -> None:
            if chance.lost_event(event.workflow_id) is event.type:
                self.record(event.workflow_id, FaultKind.LOST_EVENT, event.type)

        for event_type in LOST_EVENT_ANOMALY:
            bus.subscribe(event_type, on_event)


class Misrouter:
    """A producer outside the participants that gets an order's id wrong: once a
    staged order's parcel is delivered, it publishes the rogue event the seed chose,
    stamped with that order's id, and payment refunds an order that shipped.

    >>> from participants import InProcessBus
    >>> misrouter = Misrouter(InProcessBus(), Chance(rogue_event_rate=0.02), Staging())
    """

    def __init__(self, bus: Bus, chance: Chance, staging: Staging) -> None:
        self._bus = bus
        self._chance = chance
        self._staging = staging
        bus.subscribe(EventType.SHIPMENT_DELIVERED, self.on_shipment_delivered)

    async def on_shipment_delivered(self, event: Event) -> None:
        workflow_id = event.workflow_id
        rogue = self._chance.rogue_event(workflow_id)
        if rogue is not None and self._staging.record(workflow_id, FaultKind.ROGUE_EVENT, rogue):
            # Its id is the order's: published again after a crash, it is one event.
            rogue_event = Event(
                event_id=f"rogue-{workflow_id}", type=rogue, workflow_id=workflow_id,
                data={"items": []},
            )  # fmt: skip
            await self._bus.publish(rogue_event)
