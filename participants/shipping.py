"""The shipping service: schedules a parcel once stock is reserved, then moves it."""

from __future__ import annotations

from typing import Any

from contracts import ShippingView

from ._events import Event, EventType
from ._service import Participant
from ._store import Step

CARRIER = "parcelco"


class ShippingService(Participant):
    """StockReserved -> pending -> scheduled (ShipmentScheduled) -> in_transit
    -> delivered (ShipmentDelivered)."""

    name = "shipping"
    view = ShippingView

    def wire(self) -> None:
        self.react(EventType.STOCK_RESERVED, self.on_stock_reserved)
        self.step("schedule", self._schedule)
        self.step("dispatch", self._dispatch)
        self.step("deliver", self._deliver)

    def sample(self, state: str) -> dict[str, Any]:
        if state == "pending":
            return {}
        return {"carrier": CARRIER, "tracking_number": "PC0000000001"}

    async def on_stock_reserved(self, event: Event) -> None:
        workflow_id = event.workflow_id
        await self.commit(
            workflow_id,
            "pending",
            event_id=event.event_id,
            then=[self.later("schedule", workflow_id)],
        )

    async def _schedule(self, step: Step) -> None:
        workflow_id = step.workflow_id
        tracking = "PC" + workflow_id.upper().replace("-", "")[-10:]
        await self.commit(
            workflow_id,
            "scheduled",
            step=step,
            when=("pending",),
            data={"carrier": CARRIER, "tracking_number": tracking},
            emit=[(EventType.SHIPMENT_SCHEDULED, {"tracking": tracking})],
            then=[self.later("dispatch", workflow_id)],
        )

    async def _dispatch(self, step: Step) -> None:
        workflow_id = step.workflow_id
        await self.commit(
            workflow_id,
            "in_transit",
            step=step,
            when=("scheduled",),
            then=[self.later("deliver", workflow_id)],
        )

    async def _deliver(self, step: Step) -> None:
        await self.commit(
            step.workflow_id,
            "delivered",
            step=step,
            when=("in_transit",),
            emit=[(EventType.SHIPMENT_DELIVERED, {})],
        )
