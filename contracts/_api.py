"""The gateway's other wire models: problem details and the batch endpoint."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ._status import WorkflowStatus


class Problem(BaseModel):
    """An error answer, RFC 9457 ``application/problem+json``.

    ``type`` is stable (``urn:status-aggregator:problem:<slug>``); extension
    members depend on it (``workflow_id``, ``participants``, ``errors``).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = None


class BatchRequest(BaseModel):
    """``POST /workflows/status:batch``: the ids whose statuses are wanted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: list[str] = Field(min_length=1, description="At most the gateway's max_batch (100).")


class BatchEntry(BaseModel):
    """One id's answer: the status (200) or the problem (400, 404, 503) it would have had."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    http_status: int
    status: WorkflowStatus | None = None
    problem: Problem | None = None


class BatchResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    results: list[BatchEntry] = Field(description="One entry per requested id, in order.")
