"""Reading a participant's HTTP answer against its contract. Pure: bytes in, a Part out."""

from __future__ import annotations

from pydantic import ValidationError

from contracts import ErrorKind, Outcome, Source

from ._part import Part, failure
from ._rules import ParticipantDef
from ._transport import TransportResponse

_RETRY_LATER = frozenset({408, 425, 429})
_MAX_REPORTED_ERRORS = 3


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def may_cache(response: TransportResponse) -> bool:
    """False when the participant asked that this answer not be stored."""
    directives = response.headers.get("cache-control", "").lower()
    return "no-store" not in directives and "private" not in directives


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
    status = response.status
    if status == 404:
        return Part(Outcome.NOT_FOUND, Source.LIVE, fetched_at=fetched_at)
    if status >= 500 or status in _RETRY_LATER:
        return failure(Outcome.UNAVAILABLE, ErrorKind.HTTP_STATUS, f"HTTP {status}")
    if 300 <= status < 400:
        return failure(
            Outcome.INVALID, ErrorKind.UNEXPECTED_RESPONSE, f"redirect (HTTP {status}) not followed"
        )
    if status != 200:
        return failure(Outcome.INVALID, ErrorKind.UNEXPECTED_RESPONSE, f"HTTP {status}")

    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return failure(
            Outcome.INVALID,
            ErrorKind.UNEXPECTED_RESPONSE,
            f"unsupported content-encoding {encoding!r}",
        )
    content_type = response.headers.get("content-type", "")
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
    return Part(Outcome.OK, Source.LIVE, view=view, fetched_at=fetched_at)
