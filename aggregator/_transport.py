"""Outbound HTTP: a transport is any async callable from request to response or failure.

Tests swap the network for a plain function; production uses ``AiohttpTransport``
(in ``_http_client``). A transport reports failures as values; it raises only
when cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from contracts import ErrorKind, Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundRequest:
    url: str  # already holds the percent-encoded workflow id
    headers: Mapping[str, str]
    max_body_bytes: int
    # Event-loop time by which the call must end, retry included. The pipeline's
    # protection enforces it (it cancels the call); a transport need not.
    deadline: float = float("inf")


@dataclass(frozen=True, slots=True)
class TransportResponse:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The call produced no usable HTTP response."""

    outcome: Outcome
    kind: ErrorKind
    detail: str
    retryable: bool = False  # the request never reached the participant's logic


Transport = Callable[[OutboundRequest], Awaitable[TransportResponse | TransportFailure]]
