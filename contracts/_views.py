"""Query API response models, version 1: what each participant promises to answer.

Every participant answers ``GET <its url for the workflow>`` with one of these
bodies. The models are tolerant readers: unknown fields are ignored, so a
participant may add fields without breaking the aggregator. A ``state`` outside
the declared list is a contract violation, not a crash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
)

PaymentState = Literal["pending", "authorized", "captured", "failed", "refunded"]
InventoryState = Literal["pending", "reserved", "out_of_stock", "released"]
ShippingState = Literal["pending", "scheduled", "in_transit", "delivered", "cancelled"]

CONTRACT_VERSION = "v1"

# RFC 3339 section 5.6 ``date-time``: a string, with a time offset. Pydantic alone
# would also take a Unix time in a string and a space for the ``T``, and refuses
# a leap second (``:60``), which RFC 3339 allows.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:(?P<second>\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def _rfc3339(value: Any) -> Any:
    """A date-time string in RFC 3339 form, read; a leap second as the second
    before it (Python's datetime cannot hold ``:60``). A datetime (from Python)
    passes; anything else, a number too, is refused."""
    if isinstance(value, datetime):
        return value
    found = RFC3339.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(
            'must be an RFC 3339 date-time with an offset, such as "2026-01-01T10:00:00Z"'
        )
    if found["second"] == "60":
        start, end = found.span("second")
        value = f"{value[:start]}59{value[end:]}"
    try:  # the standard library's parser, in C: the form is RFC 3339's already
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"not a date-time: {exc}") from None


Rfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""An RFC 3339 ``date-time``: ``2026-01-01T10:00:00Z``, ``...T23:59:60+01:00``."""


class ParticipantView(BaseModel):
    """The fields every participant's answer carries, whatever its domain."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    participant: ClassVar[str] = ""

    workflow_id: str = Field(min_length=1, max_length=128)
    state: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=0, description="Increases with every change of this record.")
    updated_at: Rfc3339DateTime = Field(description="When the record last changed (RFC 3339).")

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
# What the aggregator allows a participant's answer by default (its operator may
# change both per participant): owned here, so the aggregator's settings and the
# kit's cases cannot drift apart.
DEFAULT_TIMEOUT_MS = 500
DEFAULT_MAX_BODY_BYTES = 262_144  # 256 KiB
# Where the built-in participants answer their query API, under their base URL: what
# the reference services serve, the kit asks by default and the examples configure.
QUERY_PATHS: dict[str, str] = {
    "payment": "/payments/{workflow_id}",
    "inventory": "/reservations/{workflow_id}",
    "shipping": "/shipments/{workflow_id}",
}
PLACEHOLDER = "{workflow_id}"


def declared_view(participant: str, states: Sequence[str]) -> type[ParticipantView]:
    """The generic contract of a participant declared in configuration, its ``state``
    one of ``states`` (the workflow definition's list, in order).

    >>> Flight = declared_view("flight", ["pending", "booked"])
    >>> Flight.participant, Flight.states()
    ('flight', ('pending', 'booked'))
    """
    if not states:
        raise ValueError(f"{participant}: a declared participant needs at least one state")
    if len(set(states)) != len(states):
        raise ValueError(f"{participant}: its states repeat one: {list(states)}")
    for state in states:
        if not 1 <= len(state) <= 64:
            raise ValueError(f"{participant}: state {state!r} must be 1 to 64 characters")
    model: type[ParticipantView] = create_model(
        f"DeclaredView[{participant}]",
        __base__=GenericView,
        __doc__=f"The generic contract of {participant!r}, in one of its declared states.",
        state=(Literal[tuple(states)], ...),  # type: ignore[arg-type]
    )
    model.participant = participant
    return model


def view_of(participant: str, states: Sequence[str] = ()) -> type[ParticipantView]:
    """A built-in participant's model by its name, or, given ``states``, a declared
    participant's generic one. ValueError when neither can be."""
    if states:
        return declared_view(participant, states)
    if participant in BUILTIN_VIEWS:
        return BUILTIN_VIEWS[participant]
    raise ValueError(
        f"{participant!r} is not built in ({', '.join(sorted(BUILTIN_VIEWS))}):"
        " a participant declared in configuration needs its states and query path"
    )


@dataclass(frozen=True, slots=True)
class Contract:
    """One participant's query contract: its name, the model its answers keep, and
    the path (holding ``{workflow_id}``) where it answers.

    >>> Contract.of("payment").path
    '/payments/{workflow_id}'
    >>> Contract.of("flight", states=["booked"], path="/flights/{workflow_id}").model.states()
    ('booked',)
    """

    participant: str
    model: type[ParticipantView]
    path: str

    @property
    def declared_states(self) -> tuple[str, ...]:
        """A declared participant's states, as ``of`` takes them; empty for a built-in one."""
        return () if self.model is BUILTIN_VIEWS.get(self.participant) else self.model.states()

    @classmethod
    def of(
        cls, participant: str, *, states: Sequence[str] = (), path: str | None = None
    ) -> Contract:
        """A built-in participant's contract by its name, or, given ``states`` (and a
        ``path``), a declared participant's generic one. ValueError says what is missing."""
        model = view_of(participant, states)
        path = path or QUERY_PATHS.get(participant)
        if path is None:
            raise ValueError(f"{participant}: a declared participant needs its query path (--path)")
        if (
            path.count(PLACEHOLDER) != 1
            or not path.startswith("/")
            or PLACEHOLDER not in path.partition("?")[0]
        ):
            raise ValueError(
                f"path {path!r} must start with / and hold {PLACEHOLDER} once, before any query"
            )
        return cls(participant, model, path)
