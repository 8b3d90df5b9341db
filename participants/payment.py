"""The payment service: authorizes and captures, fails sometimes, refunds on compensation."""

from __future__ import annotations

from typing import Any

from contracts import PaymentView

from ._events import Event, EventType
from ._service import Participant


class PaymentService(Participant):
    """OrderPlaced -> pending -> authorized -> captured (PaymentCaptured) or failed
    (PaymentFailed); OutOfStock -> refunded (PaymentRefunded)."""

    name = "payment"
    view = PaymentView

    def wire(self) -> None:
        self.react(EventType.ORDER_PLACED, self.on_order_placed)
        self.react(EventType.OUT_OF_STOCK, self.on_out_of_stock)

    def sample(self, state: str) -> dict[str, Any]:
        return {"amount": 1999, "currency": "EUR", "items": []}

    async def on_order_placed(self, event: Event) -> None:
        workflow_id = event.workflow_id
        order = {key: event.data[key] for key in ("amount", "currency", "items")}
        if await self.store.change(workflow_id, "pending", event_id=event.event_id, data=order):
            self.later(workflow_id, "authorize", lambda: self._authorize(workflow_id))

    async def _authorize(self, workflow_id: str) -> None:
        if await self.store.change(workflow_id, "authorized", when=("pending",)):
            self.later(workflow_id, "settle", lambda: self._settle(workflow_id))

    async def _settle(self, workflow_id: str) -> None:
        if self.chance.payment_fails(workflow_id):
            if await self.store.change(workflow_id, "failed", when=("authorized",)):
                await self.announce(EventType.PAYMENT_FAILED, workflow_id, reason="card declined")
            return
        record = await self.store.change(workflow_id, "captured", when=("authorized",))
        if record is not None:
            await self.announce(
                EventType.PAYMENT_CAPTURED, workflow_id, items=record.data.get("items", [])
            )

    async def on_out_of_stock(self, event: Event) -> None:
        workflow_id = event.workflow_id

        async def refund() -> None:
            refunded = await self.store.change(
                workflow_id, "refunded", event_id=event.event_id, when=("captured",)
            )
            if refunded:
                await self.announce(EventType.PAYMENT_REFUNDED, workflow_id)

        self.later(workflow_id, "refund", refund)
