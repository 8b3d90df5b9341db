"""From an answer to an HTTP response: status code, caching headers, ETag."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from aggregator import Answer, Disposition, Rendering, strictest_privacy

from ._problems import problem

MAX_IF_NONE_MATCH = 8_192  # characters; longer is a 400
COMPLETE_HEADER = "X-Workflow-Complete"


HTTP_STATUS = {
    Disposition.FOUND: 200,  # some participant knows the workflow
    Disposition.NOT_FOUND: 404,  # every one said it has no record
    Disposition.UNAVAILABLE: 503,  # nothing could be shown
}
NOT_FOUND_DETAIL = "no participant has a record of this workflow"
UNAVAILABLE_DETAIL = "no participant could be read and nothing cached can stand in"


def code_of(answer: Answer) -> int:
    """The HTTP status of an answer (single, batch entry, or the CLI's exit code)."""
    return HTTP_STATUS[answer.disposition]


def etag_of(rendering: Rendering) -> str:
    """The rendering's fingerprint as a weak validator: equal for equal content only."""
    return f'W/"{rendering.fingerprint}"'


def _matches(if_none_match: str, tag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(",")
    )


class ResponseMemo:
    """The 200 answers' headers and body given within the current millisecond, per
    rendering: answers to the same parts within one millisecond say exactly the same,
    so they share them. An older one can never be given again, so none is kept."""

    __slots__ = ("_given", "_limit", "_now")

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit  # renderings within one millisecond (a clock that stands still)
        self._now = float("nan")  # the millisecond the memo is for
        self._given: dict[int, tuple[Rendering, dict[str, str], bytes]] = {}

    def get(self, answer: Answer) -> tuple[dict[str, str], bytes]:
        if answer.now != self._now or len(self._given) >= self._limit:
            self._given.clear()
            self._now = answer.now
        given = self._given.get(id(answer.rendering))
        if given is not None:  # the rendering it holds keeps its id from being reused
            return given[1], given[2]
        headers, body = _headers(answer), answer.json()
        self._given[id(answer.rendering)] = (answer.rendering, headers, body)
        return headers, body


def _headers(answer: Answer) -> dict[str, str]:
    rendering = answer.rendering
    age_ms = answer.oldest_age_ms()
    complete = rendering.verdict.complete
    if not complete or rendering.stale or rendering.tentative or rendering.privacy == "no-store":
        cache_control = "no-store"
    else:
        # Whole seconds, rounded down twice: a cache adding Age to its own time never
        # keeps the answer past its first part's freshness.
        max_age = f"max-age={age_ms // 1000 + int(answer.freshness())}"
        cache_control = f"private, {max_age}" if rendering.privacy == "private" else max_age
    return {
        "Content-Type": "application/json",
        "ETag": etag_of(rendering),
        "Age": str(age_ms // 1000),
        "Cache-Control": cache_control,
        COMPLETE_HEADER: "true" if complete else "false",
    }


def batch_privacy(answers: Iterable[Answer]) -> str | None:
    """A batch's ``Cache-Control``: ``no-store`` when any answer shows a part its
    participant said not to store, else ``private`` when any shows a private one,
    else None."""
    return strictest_privacy(answer.rendering.privacy for answer in answers)


def answer_response(
    answer: Answer, *, if_none_match: str | None, retry_after: int, memo: ResponseMemo
) -> web.StreamResponse:
    """The response to one status request, given the request's ``If-None-Match``.

    ``Age`` is the oldest part's age and ``max-age`` is that age plus the time
    until the first part leaves the cache or a duration anomaly falls due, so a
    cache that honours both keeps the answer as long as it says what its parts
    say (to HTTP's resolution of whole seconds). An incomplete or stale answer is
    ``no-store``, and so is one with an unconfirmed anomaly, or showing a part
    its participant said not to store; one showing a ``private`` part is
    ``private``.
    """
    rendering = answer.rendering
    code = code_of(answer)
    if code == 404:
        return problem("workflow-not-found", 404, NOT_FOUND_DETAIL, workflow_id=answer.workflow_id)
    if code == 503:
        status = answer.status()
        reasons = {
            name: {"outcome": part.outcome, "error": part.error and part.error.model_dump()}
            for name, part in status.participants.items()
        }
        return problem(
            "participants-unavailable",
            503,
            UNAVAILABLE_DETAIL,
            headers={"Retry-After": str(retry_after)},
            workflow_id=answer.workflow_id,
            participants=reasons,
        )
    headers, body = memo.get(answer)  # web.Response copies the headers: never mutated
    if if_none_match is not None and _matches(if_none_match, etag_of(rendering)):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)
