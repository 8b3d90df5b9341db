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
    """One id's answer, with the HTTP status the single endpoint would have given.

    ``status`` is there whenever the id was valid (for 404 and 503 too, so the
    parts say why); ``problem`` whenever ``http_status`` is not 200.
    """

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    http_status: int
    status: WorkflowStatus | None = None
    problem: Problem | None = None


class BatchResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    results: list[BatchEntry] = Field(description="One entry per requested id, in order.")
