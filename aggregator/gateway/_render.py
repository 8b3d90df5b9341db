"""From a WorkflowStatus to an HTTP answer: status code, caching headers, ETag."""

from __future__ import annotations

import hashlib

from aiohttp import web

from contracts import Outcome, ParticipantStatus, Source, WorkflowStatus

from ._problems import problem

COMPLETE_HEADER = "X-Workflow-Complete"


def http_status(status: WorkflowStatus) -> int:
    """200 when some participant knows the workflow, 404 when every one said it has
    no record, 503 when nothing could be shown."""
    parts = status.participants.values()
    if any(part.view is not None for part in parts):
        return 200
    if all(part.outcome is Outcome.NOT_FOUND for part in parts):
        return 404
    return 503


def etag(status: WorkflowStatus) -> str:
    """A weak validator over what the answer says, not when or how it was fetched.

    A participant's ``version`` changes with every change of its record, so the
    view itself need not be hashed.
    """
    digest = hashlib.blake2b(digest_size=12)
    fields: list[object] = [status.workflow_id, status.workflow, status.status, status.complete]
    fields += [(a.code, a.participants) for a in status.anomalies]
    for name, part in sorted(status.participants.items()):
        error = part.error.kind if part.error is not None else None
        fields.append((name, part.outcome, part.state, part.version, part.updated_at, error))
    digest.update(repr(fields).encode())
    return f'W/"{digest.hexdigest()}"'


def oldest_age_ms(parts: list[ParticipantStatus]) -> int:
    """The age of the oldest part shown: what RFC 9111's Age says of the answer."""
    return max((part.age_ms or 0) for part in parts) if parts else 0


def _matches(if_none_match: str, tag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(",")
    )


def status_response(
    request: web.Request, status: WorkflowStatus, *, freshness: float, retry_after: int
) -> web.StreamResponse:
    """The answer to one status request.

    ``freshness`` is how long, in seconds, every part shown stays fresh. ``Age`` is
    the oldest part's age and ``max-age`` is that age plus ``freshness``, so a
    cache that honours both keeps the answer as long as its parts stay fresh (to
    HTTP's resolution of whole seconds). An incomplete answer is ``no-store``.
    """
    code = http_status(status)
    if code == 404:
        return problem(
            "workflow-not-found",
            404,
            "no participant has a record of this workflow",
            workflow_id=status.workflow_id,
        )
    if code == 503:
        reasons = {
            name: {"outcome": part.outcome, "error": part.error and part.error.model_dump()}
            for name, part in status.participants.items()
        }
        return problem(
            "participants-unavailable",
            503,
            "no participant could be read and nothing cached can stand in",
            headers={"Retry-After": str(retry_after)},
            workflow_id=status.workflow_id,
            participants=reasons,
        )
    shown = [part for part in status.participants.values() if part.source is not None]
    age_ms = oldest_age_ms(shown)
    tag = etag(status)
    stale = any(part.source is Source.STALE for part in shown)
    headers = {
        "ETag": tag,
        "Age": str(age_ms // 1000),
        "Cache-Control": f"max-age={int(age_ms / 1000 + freshness)}"
        if status.complete and not stale
        else "no-store",
        COMPLETE_HEADER: "true" if status.complete else "false",
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _matches(if_none_match, tag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=status.model_dump_json().encode(), content_type="application/json", headers=headers
    )
