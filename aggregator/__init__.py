"""Reconstruct a choreographed workflow's status on demand.

Example::

    from aggregator import Settings, StatusAggregator

    async with StatusAggregator(Settings.from_file("aggregator.toml")) as agg:
        status = await agg.status("order-42")
"""

from ._aggregator import StatusAggregator
from ._breaker import BreakerState, CircuitBreaker
from ._errors import AggregatorError, ConfigError, InvalidWorkflowId, NotOpen
from ._ids import DEFAULT_ID_PATTERN, IdPolicy
from ._merge import merge
from ._part import Part
from ._participant import ParticipantStats
from ._rules import (
    ABSENT,
    BUILTIN_DEFINITIONS,
    ORDER_FULFILMENT,
    AnomalyRule,
    ParticipantDef,
    StatusRule,
    WorkflowDefinition,
    when,
)
from ._settings import (
    CacheSettings,
    DeclaredWorkflow,
    ParticipantSettings,
    ProtectionSettings,
    Settings,
)
from ._transport import (
    AiohttpTransport,
    OutboundRequest,
    Transport,
    TransportFailure,
    TransportResponse,
)

__all__ = [
    "ABSENT",
    "BUILTIN_DEFINITIONS",
    "DEFAULT_ID_PATTERN",
    "ORDER_FULFILMENT",
    "AggregatorError",
    "AiohttpTransport",
    "AnomalyRule",
    "BreakerState",
    "CacheSettings",
    "CircuitBreaker",
    "ConfigError",
    "DeclaredWorkflow",
    "IdPolicy",
    "InvalidWorkflowId",
    "NotOpen",
    "OutboundRequest",
    "Part",
    "ParticipantDef",
    "ParticipantSettings",
    "ParticipantStats",
    "ProtectionSettings",
    "Settings",
    "StatusAggregator",
    "StatusRule",
    "Transport",
    "TransportFailure",
    "TransportResponse",
    "WorkflowDefinition",
    "merge",
    "when",
]
