"""The inventory service: reserves stock once paid, or finds none; releases on refund."""

from __future__ import annotations

from typing import Any

from contracts import InventoryView

from ._events import Event, EventType
from ._service import Participant


class InventoryService(Participant):
    """PaymentCaptured -> pending -> reserved (StockReserved) or out_of_stock
    (OutOfStock); PaymentRefunded -> released (StockReleased)."""

    name = "inventory"
    view = InventoryView

    def wire(self) -> None:
        self.react(EventType.PAYMENT_CAPTURED, self.on_payment_captured)
        self.react(EventType.PAYMENT_REFUNDED, self.on_payment_refunded)

    def sample(self, state: str) -> dict[str, Any]:
        held = [{"sku": "book-1", "quantity": 1}] if state == "reserved" else []
        return {"items": held}

    async def on_payment_captured(self, event: Event) -> None:
        workflow_id = event.workflow_id
        items: list[dict[str, Any]] = event.data.get("items", [])
        opened = await self.store.change(
            workflow_id, "pending", event_id=event.event_id, data={"items": []}
        )
        if opened:
            self.later(workflow_id, "reserve", lambda: self._reserve(workflow_id, items))

    async def _reserve(self, workflow_id: str, items: list[dict[str, Any]]) -> None:
        if self.chance.out_of_stock(workflow_id):
            if await self.store.change(workflow_id, "out_of_stock", when=("pending",)):
                await self.announce(EventType.OUT_OF_STOCK, workflow_id, items=items)
            return
        reserved = await self.store.change(
            workflow_id, "reserved", when=("pending",), data={"items": items}
        )
        if reserved:
            await self.announce(EventType.STOCK_RESERVED, workflow_id, items=items)

    async def on_payment_refunded(self, event: Event) -> None:
        workflow_id = event.workflow_id

        async def release() -> None:
            released = await self.store.change(
                workflow_id,
                "released",
                event_id=event.event_id,
                when=("out_of_stock", "reserved"),
                data={"items": []},
            )
            if released:
                await self.announce(EventType.STOCK_RELEASED, workflow_id)

        self.later(workflow_id, "release", release)
