"""Reading a participant's HTTP answer against its contract. Pure: bytes in, a Part out."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from contracts import ErrorKind, Outcome, Source

from ._cache_control import of_response
from ._part import Part, failure
from ._rules import ParticipantDef
from ._statuses import meaning
from ._transport import TransportResponse

_MAX_REPORTED_ERRORS = 3


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def content_encoding(headers: Mapping[str, str]) -> str | None:
    """The body's encoding (names in lower case), None for ``identity``: the only one
    we ask for and accept."""
    encoding = headers.get("content-encoding", "").strip().lower()
    return None if encoding in ("", "identity") else encoding


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False)[:_MAX_REPORTED_ERRORS]:
        where = ".".join(str(step) for step in item["loc"]) or "body"
        got = repr(item["input"])
        if len(got) > 40:
            got = got[:40] + "..."
        problems.append(f"{where}: {item['msg']} (got {got})")
    more = error.error_count() - _MAX_REPORTED_ERRORS
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def interpret(
    response: TransportResponse, participant: ParticipantDef, workflow_id: str, fetched_at: float
) -> Part:
    """Turn one HTTP answer into a live Part (or a failure without a view)."""
    said = meaning(response.status)
    if said.kind is not None:
        return failure(said.outcome, said.kind, said.detail)
    headers = response.headers
    directives = of_response(headers, fetched_at)
    if said.outcome is Outcome.NOT_FOUND:
        return Part(Outcome.NOT_FOUND, Source.LIVE, fetched_at=fetched_at, directives=directives)

    encoding = content_encoding(headers)
    if encoding is not None:
        return failure(
            Outcome.INVALID,
            ErrorKind.UNEXPECTED_RESPONSE,
            f"unsupported content-encoding {encoding!r}",
        )
    content_type = headers.get("content-type", "")
    if not _is_json(content_type):
        return failure(
            Outcome.INVALID,
            ErrorKind.UNEXPECTED_RESPONSE,
            f"content type {content_type or 'missing'!r} is not JSON",
        )
    try:
        view = participant.model.model_validate_json(response.body)
    except ValidationError as exc:
        kind = (
            ErrorKind.INVALID_JSON
            if any(item["type"] == "json_invalid" for item in exc.errors())
            else ErrorKind.SCHEMA_VIOLATION
        )
        return failure(Outcome.INVALID, kind, _describe(exc))
    if view.state not in participant.states:
        return failure(
            Outcome.INVALID,
            ErrorKind.SCHEMA_VIOLATION,
            f"state: unknown state {view.state!r}; expected one of {list(participant.states)}",
        )
    if view.workflow_id != workflow_id:
        return failure(
            Outcome.INVALID,
            ErrorKind.SCHEMA_VIOLATION,
            f"workflow_id: answered for {view.workflow_id!r}, asked for {workflow_id!r}",
        )
    return Part(Outcome.OK, Source.LIVE, view=view, fetched_at=fetched_at, directives=directives)
