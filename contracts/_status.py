"""The aggregator's own answer: one workflow's status, merged from its parts."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Outcome(StrEnum):
    """What the participant said (or failed to say) for this request."""

    OK = "ok"
    NOT_FOUND = "not_found"  # it has no record yet: normal in a choreography
    UNAVAILABLE = "unavailable"  # timeout, refused, 5xx, circuit open, throttled
    INVALID = "invalid"  # it answered, but not within its contract


class Source(StrEnum):
    """Where the part shown comes from (RFC 9211's vocabulary, simplified)."""

    LIVE = "live"  # fetched while answering this request
    CACHE = "cache"  # within its time to live
    STALE = "stale"  # past it, shown because a live fetch failed


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_STATUS = "http_status"
    CIRCUIT_OPEN = "circuit_open"
    THROTTLED = "throttled"
    BULKHEAD_FULL = "bulkhead_full"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_JSON = "invalid_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNEXPECTED_RESPONSE = "unexpected_response"
    VERSION_REGRESSION = "version_regression"


class PartError(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ErrorKind
    detail: str = Field(description="Human-readable, safe to show to a caller.")


class ParticipantStatus(BaseModel):
    """One participant's part of the answer, with where it came from and how old it is."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    source: Source | None = Field(description="null when nothing could be shown.")
    fetched_at: AwareDatetime | None
    updated_at: AwareDatetime | None = Field(description="As the participant reported it.")
    state: str | None
    version: int | None
    view: dict[str, Any] | None = Field(description="The participant's answer, as parsed.")
    error: PartError | None
    age_ms: int | None = Field(ge=0, description="Time since the part was fetched.")


class Anomaly(BaseModel):
    """A contradiction between parts, or a workflow stuck between two steps."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    participants: tuple[str, ...]
    confirmed: bool = Field(
        True,
        description=(
            "The parts it rests on were fetched within the anomaly window of each other "
            "(re-asked if need be); false when a participant could not be asked again."
        ),
    )


class Step(BaseModel):
    """One participant's state in the timeline, as of when it last changed."""

    model_config = ConfigDict(frozen=True)

    participant: str
    state: str
    at: AwareDatetime = Field(description="The part's updated_at, as the participant reported it.")


class WorkflowStatus(BaseModel):
    """The merged status of one workflow, as the aggregator answers it.

    The fields that change from one request to the next (``generated_at``, the
    parts and their ``age_ms``) come last, so an answer can be rendered by
    appending them to bytes rendered once.
    """

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    workflow: str = Field(description="The workflow definition the status was derived with.")
    status: str
    complete: bool = Field(
        description="Every participant answered from a live fetch or a fresh cache entry."
    )
    derived_from: tuple[str, ...] = Field(
        description="The participants whose states decided the status."
    )
    anomalies: tuple[Anomaly, ...]
    since: AwareDatetime | None = Field(
        description=(
            "When the workflow entered its status: the latest updated_at of the parts "
            "that decided it (null when none has one)."
        )
    )
    timeline: tuple[Step, ...] = Field(
        description="Each shown part's state and its updated_at, the earliest first."
    )
    generated_at: AwareDatetime
    participants: dict[str, ParticipantStatus]
