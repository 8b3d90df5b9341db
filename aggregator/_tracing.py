"""Tracing with the OpenTelemetry API: the spans a status makes, and their attributes.

Only the API is imported here. Without an SDK (or with a no-op provider) the
aggregator decides so once, when it opens, and composes its pipelines without
the tracing stage: a cache hit or a miss then costs what it cost before
tracing existed. With a provider that records, each participant call made for
a request is a CLIENT span, a child of whatever span is current where the call
was started (the gateway's SERVER span, or the embedding caller's own), and
the participant receives a ``traceparent`` naming that span.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import context, trace
from opentelemetry.trace import (
    NoOpTracer,
    ProxyTracer,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from contracts import Source

from ._part import Part
from ._stage import Ask, Stage
from ._version import __version__

if TYPE_CHECKING:
    from ._answer import Answer

SCOPE = "aggregator"  # the instrumentation scope every span of ours is named by
# W3C Trace Context alone, whatever the global propagators: ``traceparent`` and
# ``tracestate`` are what participants get from a caller; never its ``baggage``,
# which nothing of ours reads and which would copy a caller's header onward.
_W3C = TraceContextTextMapPropagator()


class Tracing:
    """The tracer our spans come from, and whether spans can be recorded at all.

    ``provider`` None means the global one (``opentelemetry.trace``); ``live`` is
    decided by ``decide()`` when the aggregator opens: a global provider set
    after that is not picked up until the aggregator is opened again.
    """

    __slots__ = ("_provider", "live", "tracer")

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.live = False

    def decide(self) -> bool:
        """Look the provider up now: live unless it is the API's no-op (no SDK, none
        set) or an SDK that is disabled."""
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=self._provider)
        # With no provider set, the API hands out a proxy that stays a no-op until
        # one is set; a disabled SDK hands out the no-op tracer itself.
        self.live = not isinstance(self.tracer, NoOpTracer | ProxyTracer)
        return self.live

    def joined(self, participant: str) -> None:
        """A caller shares a call already in flight: an event on its own span."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("coalesced", {"participant.name": participant})

    @staticmethod
    def extract(headers: Mapping[str, str]) -> context.Context:
        """The caller's trace context, from its ``traceparent`` and ``tracestate``
        (an invalid ``traceparent`` is none)."""
        return _W3C.extract(headers)

    @staticmethod
    def forward(headers: dict[str, str], parent: context.Context) -> None:
        """Add ``parent``'s ``traceparent`` and ``tracestate`` to ``headers``, as the
        W3C format writes them; nothing when it has no valid span context."""
        _W3C.inject(headers, context=parent)

    @staticmethod
    def describe(span: Span, answer: Answer) -> None:
        """What an answer says, on the span of the request it answers (when it records):
        its status, whether it is complete, and which parts were not fetched for it
        (cache hits, and stale parts standing in for failed calls)."""
        if not span.is_recording():
            return
        parts = answer.parts.items()
        verdict = answer.verdict
        span.set_attributes(
            {
                "workflow.status": verdict.status,
                "workflow.complete": verdict.complete,
                "aggregator.cache_hits": [name for name, p in parts if p.source is Source.CACHE],
                "aggregator.stale": [name for name, p in parts if p.source is Source.STALE],
            }
        )

    @staticmethod
    def ids(span: Span) -> tuple[str, str] | None:
        """``span``'s trace and span id as lower-case hex (32 and 16 digits), while it records."""
        if not span.is_recording():
            return None
        context = span.get_span_context()
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

    @staticmethod
    def current_ids() -> tuple[str, str] | None:
        """The ids of the span current now, while it records (log lines carry them)."""
        return Tracing.ids(trace.get_current_span())


def inject(headers: Mapping[str, str], span: Span) -> dict[str, str]:
    """``headers`` with ``traceparent`` (and ``tracestate``) naming ``span`` as the parent."""
    carrier = dict(headers)
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


class Traced:
    """The tracing stage, between coalescing and the last good part: every call a
    caller starts is one CLIENT span, started in that caller's context (so a
    child of its current span), and its participant gets a ``traceparent`` naming
    the span. Callers coalesced onto the call get no span of their own.

    The span says what the caller got: the part's outcome and source (``live``,
    or ``stale`` when the last good part stood in) and the error's kind; the
    interpret stage adds the HTTP status to it while it is current. A refusal at
    once (an open circuit) is a span too, with ``error.type`` ``circuit_open``.
    """

    __slots__ = ("_attributes", "_name", "_next", "_tracer")

    def __init__(self, next_stage: Stage, tracing: Tracing, *, participant: str, url: str) -> None:
        self._next = next_stage
        self._tracer = tracing.tracer
        parsed = urlsplit(url)
        template = parsed.path or "/"
        self._name = f"GET {template}"
        self._attributes: dict[str, str | int] = {
            "participant.name": participant,
            "http.request.method": "GET",
            "url.template": template,
            "server.address": parsed.hostname or "",
        }
        if parsed.port is not None:
            self._attributes["server.port"] = parsed.port

    def __call__(self, ask: Ask) -> Part | Awaitable[Part]:
        span = self._tracer.start_span(self._name, kind=SpanKind.CLIENT)
        if span.is_recording():
            span.set_attributes(self._attributes)
            span.set_attribute("workflow.id", ask.workflow_id)
        got = self._next(Ask(ask.key, ask.deadline, inject(ask.headers, span)))
        if isinstance(got, Part):
            _end(span, got)
            return got
        return self._later(span, got)

    async def _later(self, span: Span, call: Awaitable[Part]) -> Part:
        # Current while the call runs (in the call's own task and context), so the
        # stages below can add to it.
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            try:
                part = await call
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__name__)
                span.end()
                raise
        _end(span, part)
        return part


def _end(span: Span, part: Part) -> None:
    if span.is_recording():
        span.set_attribute("participant.outcome", str(part.outcome))
        if part.source is not None:
            span.set_attribute("participant.source", str(part.source))
        if part.error is not None:
            kind = str(part.error.kind)
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, f"{kind}: {part.error.detail}"))
    span.end()


def reply_status(status: int) -> None:
    """The participant's HTTP status, on the call's span (current in its task)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
