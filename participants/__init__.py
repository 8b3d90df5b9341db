"""Reference payment, inventory and shipping services that choreograph an order.

Each keeps its own SQLite database, reacts to events on a bus (NATS JetStream,
or an in-process one) and never calls another; each serves its query API
exactly as ``contracts`` defines it.
"""

from ._bus import Bus, InProcessBus
from ._chance import Chance
from ._choreography import (
    DEFAULT_PORTS,
    SERVICES,
    Choreography,
    ChoreographyConfig,
    ListenError,
    listen,
)
from ._deployed import Deployed, Deployment
from ._events import Event, EventType, order_placed
from ._nats import BusError, JetStreamServer, NatsBus
from ._processes import ProcessChoreography, ProcessError, open_choreography
from ._resource import InUse
from ._service import Faults, Participant
from ._staging import FaultKind, Misrouter, StagedFault, Staging
from ._store import Record, Store
from ._tracing import only_workflow
from .inventory import InventoryService
from .payment import PaymentService
from .shipping import ShippingService

__all__ = [
    "DEFAULT_PORTS",
    "SERVICES",
    "Bus",
    "BusError",
    "Chance",
    "Choreography",
    "ChoreographyConfig",
    "Deployed",
    "Deployment",
    "Event",
    "EventType",
    "FaultKind",
    "Faults",
    "InProcessBus",
    "InUse",
    "InventoryService",
    "JetStreamServer",
    "ListenError",
    "Misrouter",
    "NatsBus",
    "Participant",
    "PaymentService",
    "ProcessChoreography",
    "ProcessError",
    "Record",
    "ShippingService",
    "StagedFault",
    "Staging",
    "Store",
    "listen",
    "only_workflow",
    "open_choreography",
    "order_placed",
]
