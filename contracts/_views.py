"""Query API response models, version 1: what each participant promises to answer.

Every participant answers ``GET <its url for the workflow>`` with one of these
bodies. The models are tolerant readers: unknown fields are ignored, so a
participant may add fields without breaking the aggregator. A ``state`` outside
the declared list is a contract violation, not a crash.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PaymentState = Literal["pending", "authorized", "captured", "failed", "refunded"]
InventoryState = Literal["pending", "reserved", "out_of_stock", "released"]
ShippingState = Literal["pending", "scheduled", "in_transit", "delivered", "cancelled"]

CONTRACT_VERSION = "v1"


class ParticipantView(BaseModel):
    """The fields every participant's answer carries, whatever its domain."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    participant: ClassVar[str] = ""

    workflow_id: str = Field(min_length=1, max_length=128)
    state: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=0, description="Increases with every change of this record.")
    updated_at: AwareDatetime = Field(description="When the record last changed (RFC 3339).")

    @classmethod
    def states(cls) -> tuple[str, ...]:
        """The state values this model accepts; empty when any string is accepted."""
        annotation = cls.model_fields["state"].annotation
        return tuple(get_args(annotation)) if annotation is not str else ()


class PaymentView(ParticipantView):
    """The payment service's view of a workflow.

    >>> PaymentView.model_validate_json(
    ...     '{"workflow_id": "order-42", "state": "captured", "version": 3,'
    ...     ' "updated_at": "2026-01-01T10:00:00Z", "amount": 1999, "currency": "EUR"}'
    ... ).state
    'captured'
    """

    participant: ClassVar[str] = "payment"

    state: PaymentState
    amount: int = Field(ge=0, description="Amount in minor units (cents).")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")


class ReservedItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1)


class InventoryView(ParticipantView):
    """The inventory service's view: which items it holds for the workflow."""

    participant: ClassVar[str] = "inventory"

    state: InventoryState
    items: tuple[ReservedItem, ...] = ()


class ShippingView(ParticipantView):
    """The shipping service's view: the parcel, once scheduled."""

    participant: ClassVar[str] = "shipping"

    state: ShippingState
    carrier: str | None = None
    tracking_number: str | None = None


class GenericView(ParticipantView):
    """The contract of a participant declared only in configuration.

    The state list comes from the workflow definition, so it is checked by the
    aggregator rather than by this model; other fields are passed through.
    """

    model_config = ConfigDict(extra="allow", frozen=True)


BUILTIN_VIEWS: dict[str, type[ParticipantView]] = {
    model.participant: model for model in (PaymentView, InventoryView, ShippingView)
}
# The headers the aggregator sends with every query (and the kit, acting as it):
# JSON, and no content encoding (bodies are never decompressed).
QUERY_HEADERS: dict[str, str] = {"Accept": "application/json", "Accept-Encoding": "identity"}
# Where the built-in participants answer their query API, under their base URL: what
# the reference services serve, the kit asks by default and the examples configure.
# What the aggregator allows a participant's answer by default (its operator may
# change both per participant): owned here, so the aggregator's settings and the
# kit's cases cannot drift apart.
DEFAULT_TIMEOUT_MS = 500
DEFAULT_MAX_BODY_BYTES = 262_144  # 256 KiB
QUERY_PATHS: dict[str, str] = {
    "payment": "/payments/{workflow_id}",
    "inventory": "/reservations/{workflow_id}",
    "shipping": "/shipments/{workflow_id}",
}
