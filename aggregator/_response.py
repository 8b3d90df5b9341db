"""Reading a participant's HTTP answer against its contract: ``interpret`` (pure:
bytes in, a Part out), and the pipeline stage that makes the request and reads
the answer with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from contracts import ErrorKind, Outcome, Source, content_encoding, is_json, validation_problems

from ._cache_control import of_response
from ._part import Part, failure
from ._rules import ParticipantDef
from ._stage import Ask, Observer
from ._statuses import meaning
from ._tracing import reply_status
from ._transport import OutboundRequest, TransportFailure, TransportResponse

_MAX_REPORTED_ERRORS = 3


def _describe(error: ValidationError) -> str:
    problems = validation_problems(error, inputs=True)
    more = len(problems) - _MAX_REPORTED_ERRORS
    return "; ".join(problems[:_MAX_REPORTED_ERRORS]) + (f"; and {more} more" if more > 0 else "")


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
    if not is_json(content_type):
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


Reply = TransportResponse | TransportFailure
# A transport, or protection around one: the reply at once when it can (a refusal).
Call = Callable[[OutboundRequest], "Reply | Awaitable[Reply]"]


class Interpret:
    """The stage that asks: builds the request, hands it to ``call`` (protection
    around the transport) and reads the reply against the participant's contract.

    ``observer`` is told about every call that went out, timed with ``timer``;
    ``traced``: the call runs inside its span (``_tracing``), which gets the HTTP status.
    """

    __slots__ = (
        "_call",
        "_clock",
        "_max_body",
        "_observer",
        "_participant",
        "_template",
        "_timer",
        "_traced",
    )

    def __init__(
        self,
        call: Call,
        participant: ParticipantDef,
        *,
        url: str,
        max_body_bytes: int,
        clock: Callable[[], float],
        timer: Callable[[], float],
        observer: Observer | None,
        traced: bool = False,
    ) -> None:
        self._call = call
        self._traced = traced
        self._participant = participant
        self._template = url
        self._max_body = max_body_bytes
        self._clock = clock
        self._timer = timer
        self._observer = observer

    def __call__(self, ask: Ask) -> Part | Awaitable[Part]:
        request = OutboundRequest(
            url=self._template.replace("{workflow_id}", ask.segment),
            headers=ask.headers,
            max_body_bytes=self._max_body,
            deadline=ask.deadline,
        )
        started = self._timer()
        reply = self._call(request)
        if isinstance(reply, (TransportResponse, TransportFailure)):  # refused at once
            return self._read(reply, ask.workflow_id)
        return self._later(reply, ask.workflow_id, started)

    async def _later(self, call: Awaitable[Reply], workflow_id: str, started: float) -> Part:
        reply = await call
        if self._traced and isinstance(reply, TransportResponse):
            reply_status(reply.status)
        part = self._read(reply, workflow_id)
        if self._observer is not None:
            self._observer.fetched(self._participant.name, part, self._timer() - started)
        return part

    def _read(self, reply: Reply, workflow_id: str) -> Part:
        if isinstance(reply, TransportFailure):
            return failure(reply.outcome, reply.kind, reply.detail)
        return interpret(reply, self._participant, workflow_id, self._clock())
