"""The inventory service: reserves stock once paid, or finds none; releases on refund."""

from __future__ import annotations

from typing import Any

from contracts import InventoryView

from ._events import Event, EventType
from ._service import Participant
from ._store import Step


class InventoryService(Participant):
    """PaymentCaptured -> pending -> reserved (StockReserved) or out_of_stock
    (OutOfStock); PaymentRefunded -> released (StockReleased)."""

    name = "inventory"
    view = InventoryView

    def wire(self) -> None:
        self.react(EventType.PAYMENT_CAPTURED, self.on_payment_captured)
        self.react(EventType.PAYMENT_REFUNDED, self.on_payment_refunded)
        self.step("reserve", self._reserve)
        self.step("release", self._release)

    def sample(self, state: str) -> dict[str, Any]:
        held = [{"sku": "book-1", "quantity": 1}] if state == "reserved" else []
        return {"items": held}

    async def on_payment_captured(self, event: Event) -> None:
        workflow_id = event.workflow_id
        items: list[dict[str, Any]] = event.data.get("items", [])
        await self.commit(
            workflow_id,
            "pending",
            event_id=event.event_id,
            data={"items": []},
            then=[self.later("reserve", workflow_id, items=items)],
        )

    async def _reserve(self, step: Step) -> None:
        workflow_id, items = step.workflow_id, step.data.get("items", [])
        if self.chance.out_of_stock(workflow_id):
            missing = (EventType.OUT_OF_STOCK, {"items": items})
            await self.commit(
                workflow_id, "out_of_stock", step=step, when=("pending",), emit=[missing]
            )
            return
        reserved = (EventType.STOCK_RESERVED, {"items": items})
        await self.commit(
            workflow_id,
            "reserved",
            step=step,
            when=("pending",),
            data={"items": items},
            emit=[reserved],
        )

    async def on_payment_refunded(self, event: Event) -> None:
        workflow_id = event.workflow_id
        await self.commit(
            workflow_id, None, event_id=event.event_id, then=[self.later("release", workflow_id)]
        )

    async def _release(self, step: Step) -> None:
        await self.commit(
            step.workflow_id,
            "released",
            step=step,
            when=("out_of_stock", "reserved"),
            data={"items": []},
            emit=[(EventType.STOCK_RELEASED, {})],
        )
