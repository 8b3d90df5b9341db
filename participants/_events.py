"""The events the reference participants choreograph with. No service owns the workflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class EventType(StrEnum):
    ORDER_PLACED = "OrderPlaced"
    PAYMENT_CAPTURED = "PaymentCaptured"
    PAYMENT_FAILED = "PaymentFailed"
    STOCK_RESERVED = "StockReserved"
    OUT_OF_STOCK = "OutOfStock"
    PAYMENT_REFUNDED = "PaymentRefunded"
    STOCK_RELEASED = "StockReleased"
    SHIPMENT_SCHEDULED = "ShipmentScheduled"
    SHIPMENT_DELIVERED = "ShipmentDelivered"


SUBJECTS = "orders.>"  # the subjects the order events are published on


def subject(event_type: EventType) -> str:
    """The subject an event of this type is published on.

    >>> subject(EventType.ORDER_PLACED)
    'orders.OrderPlaced'
    """
    return f"orders.{event_type}"


class Event(BaseModel):
    """One fact a participant announces; its id makes redelivery harmless."""

    model_config = ConfigDict(frozen=True)

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: EventType
    workflow_id: str
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = {}
    # The trace context of the change that caused it: message headers, not the body.
    trace: dict[str, str] = Field(default_factory=dict, exclude=True)


def order_placed(
    workflow_id: str, *, amount: int, currency: str, items: list[dict[str, Any]]
) -> Event:
    """What a shop front announces when a customer orders."""
    return Event(
        type=EventType.ORDER_PLACED,
        workflow_id=workflow_id,
        data={"amount": amount, "currency": currency, "items": items},
    )
