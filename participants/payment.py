"""The payment service: authorizes and captures, fails sometimes, refunds on compensation."""

from __future__ import annotations

from typing import Any

from contracts import PaymentView

from ._events import Event, EventType
from ._service import Participant
from ._store import Step


class PaymentService(Participant):
    """OrderPlaced -> pending -> authorized -> captured (PaymentCaptured) or failed
    (PaymentFailed); OutOfStock -> refunded (PaymentRefunded)."""

    name = "payment"
    view = PaymentView

    def wire(self) -> None:
        self.react(EventType.ORDER_PLACED, self.on_order_placed)
        self.react(EventType.OUT_OF_STOCK, self.on_out_of_stock)
        self.step("authorize", self._authorize)
        self.step("settle", self._settle)
        self.step("refund", self._refund)

    def sample(self, state: str) -> dict[str, Any]:
        return {"amount": 1999, "currency": "EUR", "items": []}

    async def on_order_placed(self, event: Event) -> None:
        workflow_id = event.workflow_id
        order = {key: event.data[key] for key in ("amount", "currency", "items")}
        await self.commit(
            workflow_id,
            "pending",
            event_id=event.event_id,
            data=order,
            then=[self.later("authorize", workflow_id)],
        )

    async def _authorize(self, step: Step) -> None:
        workflow_id = step.workflow_id
        await self.commit(
            workflow_id,
            "authorized",
            step=step,
            when=("pending",),
            then=[self.later("settle", workflow_id)],
        )

    async def _settle(self, step: Step) -> None:
        workflow_id = step.workflow_id
        if self.chance.payment_fails(workflow_id):
            failed = (EventType.PAYMENT_FAILED, {"reason": "card declined"})
            await self.commit(workflow_id, "failed", step=step, when=("authorized",), emit=[failed])
            return
        record = await self.store.get(workflow_id)
        captured = (
            EventType.PAYMENT_CAPTURED,
            {"items": record.data.get("items", []) if record else []},
        )
        await self.commit(workflow_id, "captured", step=step, when=("authorized",), emit=[captured])

    async def on_out_of_stock(self, event: Event) -> None:
        workflow_id = event.workflow_id
        await self.commit(
            workflow_id, None, event_id=event.event_id, then=[self.later("refund", workflow_id)]
        )

    async def _refund(self, step: Step) -> None:
        refunded: tuple[EventType, dict[str, Any]] = (EventType.PAYMENT_REFUNDED, {})
        await self.commit(
            step.workflow_id, "refunded", step=step, when=("captured",), emit=[refunded]
        )
