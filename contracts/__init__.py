"""The wire: what participants promise to answer, and what the aggregator answers.

Depends on pydantic only, so a participant team can import it without the aggregator.
"""

from ._api import BatchEntry, BatchRequest, BatchResponse, Problem
from ._media import content_encoding, is_json
from ._status import (
    Anomaly,
    ErrorKind,
    Outcome,
    PartError,
    ParticipantStatus,
    Source,
    Step,
    WorkflowStatus,
)
from ._stub import Stub, StubOptions
from ._validation import validation_problems
from ._views import (
    BUILTIN_VIEWS,
    CONTRACT_VERSION,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT_MS,
    QUERY_HEADERS,
    QUERY_PATHS,
    Contract,
    GenericView,
    InventoryState,
    InventoryView,
    ParticipantView,
    PaymentState,
    PaymentView,
    ReservedItem,
    ShippingState,
    ShippingView,
    declared_view,
)

__all__ = [
    "BUILTIN_VIEWS",
    "CONTRACT_VERSION",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TIMEOUT_MS",
    "QUERY_HEADERS",
    "QUERY_PATHS",
    "Anomaly",
    "BatchEntry",
    "BatchRequest",
    "BatchResponse",
    "Contract",
    "ErrorKind",
    "GenericView",
    "InventoryState",
    "InventoryView",
    "Outcome",
    "PartError",
    "ParticipantStatus",
    "ParticipantView",
    "PaymentState",
    "PaymentView",
    "Problem",
    "ReservedItem",
    "ShippingState",
    "ShippingView",
    "Source",
    "Step",
    "Stub",
    "StubOptions",
    "WorkflowStatus",
    "content_encoding",
    "declared_view",
    "is_json",
    "validation_problems",
]
