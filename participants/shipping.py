"""The shipping service: schedules a parcel once stock is reserved, then moves it."""

from __future__ import annotations

from typing import Any

from contracts import ShippingView

from ._events import Event, EventType
from ._service import Participant

CARRIER = "parcelco"


class ShippingService(Participant):
    """StockReserved -> pending -> scheduled (ShipmentScheduled) -> in_transit
    -> delivered (ShipmentDelivered)."""

    name = "shipping"
    view = ShippingView

    def wire(self) -> None:
        self.react(EventType.STOCK_RESERVED, self.on_stock_reserved)

    def sample(self, state: str) -> dict[str, Any]:
        if state == "pending":
            return {}
        return {"carrier": CARRIER, "tracking_number": "PC0000000001"}

    async def on_stock_reserved(self, event: Event) -> None:
        workflow_id = event.workflow_id
        if await self.store.change(workflow_id, "pending", event_id=event.event_id):
            self.later(workflow_id, "schedule", lambda: self._schedule(workflow_id))

    async def _schedule(self, workflow_id: str) -> None:
        tracking = "PC" + workflow_id.upper().replace("-", "")[-10:]
        scheduled = await self.store.change(
            workflow_id,
            "scheduled",
            when=("pending",),
            data={"carrier": CARRIER, "tracking_number": tracking},
        )
        if scheduled:
            await self.announce(EventType.SHIPMENT_SCHEDULED, workflow_id, tracking=tracking)
            self.later(workflow_id, "dispatch", lambda: self._dispatch(workflow_id))

    async def _dispatch(self, workflow_id: str) -> None:
        if await self.store.change(workflow_id, "in_transit", when=("scheduled",)):
            self.later(workflow_id, "deliver", lambda: self._deliver(workflow_id))

    async def _deliver(self, workflow_id: str) -> None:
        if await self.store.change(workflow_id, "delivered", when=("in_transit",)):
            await self.announce(EventType.SHIPMENT_DELIVERED, workflow_id)
