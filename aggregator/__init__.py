"""Reconstruct a choreographed workflow's status on demand.

Example::

    from aggregator import Settings, StatusAggregator

    async with StatusAggregator(Settings.from_file("aggregator.toml")) as agg:
        status = await agg.status("order-42")
"""

from ._aggregator import StatusAggregator
from ._answer import Answer, Rendering
from ._breaker import BreakerState, CircuitBreaker
from ._cache_control import strictest_privacy
from ._errors import (
    AggregatorError,
    ConfigError,
    InvalidWorkflowId,
    NotOpen,
    TooManyWatchers,
    WatchFailed,
)
from ._http_client import AiohttpTransport
from ._ids import DEFAULT_ID_PATTERN, HARD_MAX_LENGTH, IdPolicy
from ._log_budget import LogBudget
from ._merge import Disposition, Verdict, judge, merge
from ._part import Part
from ._pipeline import ParticipantPipeline
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
    CONFIG_ENV,
    AuthSettings,
    CacheSettings,
    DeclaredWorkflow,
    GatewaySettings,
    ParticipantSettings,
    ProtectionSettings,
    Settings,
    WatchSettings,
)
from ._stage import Observer, ParticipantStats
from ._tracing import Tracing
from ._transport import (
    OutboundRequest,
    Transport,
    TransportFailure,
    TransportResponse,
)
from ._version import __version__
from ._watch import Change

__all__ = [
    "ABSENT",
    "BUILTIN_DEFINITIONS",
    "CONFIG_ENV",
    "DEFAULT_ID_PATTERN",
    "HARD_MAX_LENGTH",
    "ORDER_FULFILMENT",
    "AggregatorError",
    "AiohttpTransport",
    "AnomalyRule",
    "Answer",
    "AuthSettings",
    "BreakerState",
    "CacheSettings",
    "Change",
    "CircuitBreaker",
    "ConfigError",
    "DeclaredWorkflow",
    "Disposition",
    "GatewaySettings",
    "IdPolicy",
    "InvalidWorkflowId",
    "LogBudget",
    "NotOpen",
    "Observer",
    "OutboundRequest",
    "Part",
    "ParticipantDef",
    "ParticipantPipeline",
    "ParticipantSettings",
    "ParticipantStats",
    "ProtectionSettings",
    "Rendering",
    "Settings",
    "StatusAggregator",
    "StatusRule",
    "TooManyWatchers",
    "Tracing",
    "Transport",
    "TransportFailure",
    "TransportResponse",
    "Verdict",
    "WatchFailed",
    "WatchSettings",
    "WorkflowDefinition",
    "__version__",
    "judge",
    "merge",
    "strictest_privacy",
    "when",
]
