"""The HTTP gateway: a thin aiohttp layer over one StatusAggregator."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from pydantic import ValidationError

from aggregator import (
    CONFIG_ENV,
    ConfigError,
    Disposition,
    InvalidWorkflowId,
    NotOpen,
    Settings,
    StatusAggregator,
    TooManyWatchers,
    Tracing,
    Transport,
)
from contracts import BatchEntry, BatchRequest, BatchResponse, Problem, validation_problems

from ._access import batch_lines, log_access
from ._auth import Authenticator
from ._collector import tune_collector
from ._events import Streams, frame, send, stream_headers
from ._logs import (
    REQUEST_ID,
    ParserRefusals,
    configure_logging,
    log,
    log_parser_refusals,
)
from ._metrics import CONTENT_TYPE, GatewayMetrics
from ._openapi import openapi_document
from ._problems import problem, problem_body
from ._render import (
    COMPLETE_HEADER,
    MAX_IF_NONE_MATCH,
    NOT_FOUND_DETAIL,
    UNAVAILABLE_DETAIL,
    ResponseMemo,
    answer_response,
    batch_privacy,
    code_of,
    etag_of,
)
from ._ui import OperatorPage
from ._workers import DIRECTORY_ENV, Exchange

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BODY_LIMIT = 256 * 1024
_ANY_PATH = "/{path}"  # the catch-all route's canonical form
_VARY_CREDENTIALS = "Authorization, X-API-Key"
# nginx's status for a client that closed the connection before its answer: never sent,
# only logged and counted.
CLIENT_GONE = 499


@dataclass(slots=True)
class Gateway:
    """What the handlers share; one per application."""

    settings: Settings
    aggregator: StatusAggregator
    auth: Authenticator
    metrics: GatewayMetrics
    openapi: bytes
    streams: Streams
    access_log: bool = True
    responses: ResponseMemo = field(default_factory=ResponseMemo)
    active: int = 0  # workflow requests being answered
    in_flight: int = 0  # all requests being answered


GATEWAY = web.AppKey("gateway", Gateway)
TENANT = web.RequestKey("tenant", str)


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ())))
        return problem(
            "method-not-allowed",
            405,
            "this resource does not answer that method",
            headers={"Allow": allowed},
        )
    if exc.status == 413:
        return problem(
            "payload-too-large", 413, f"request bodies are limited to {_BODY_LIMIT} bytes"
        )
    if exc.status == 404:
        return problem("not-found", 404, "no such resource")
    return (
        problem("invalid-request", 400, exc.reason or "invalid request")
        if exc.status < 500
        else problem("internal-error", 500, "the request could not be answered")
    )


# The HTTP parser's bounds: room for the longest id allowed (1,024 characters, each
# up to 12 bytes percent-encoded) and for long validators. Beyond them aiohttp's
# parser answers 400 itself, in plain text, and closes the connection.
HTTP_LIMITS = {"max_line_size": 16_384, "max_field_size": 16_384, "max_headers": 128}

_REQUEST_IDS = itertools.count(1)
_PROCESS_TAG = secrets.token_hex(8)


def _retag() -> None:
    """A forked worker (gunicorn --preload) gets a tag of its own, not its parent's."""
    global _PROCESS_TAG
    _PROCESS_TAG = secrets.token_hex(8)


os.register_at_fork(after_in_child=_retag)


def _new_request_id() -> str:
    """Unique across processes (a random tag) and cheap (a counter): 32 hex digits."""
    return f"{_PROCESS_TAG}{next(_REQUEST_IDS):016x}"


GatewayHandler = Callable[[web.Request, Gateway], Awaitable[web.StreamResponse]]


def _guarded(
    handler: GatewayHandler,
    gateway: Gateway,
    route: str,
    *,
    workflows: bool | None,
    counted: bool = True,
    traced: bool = False,
) -> Handler:
    """``handler`` with what every answer needs: a request id, overload and
    authentication (``workflows`` routes; None: decided by the path), metrics
    labelled ``route`` and the access log; every error becomes a problem body.
    An event stream is not ``counted`` among the requests in flight that
    ``max_concurrent_requests`` bounds once it has started (the watch limits
    bound streams): it counts itself until its first answer. A ``traced`` route's
    request is a SERVER span (while the aggregator's spans are recorded), current
    while its handler runs and until its access line is left.

    A wrapper per route rather than an aiohttp middleware, which adds two
    layers of calls to every request (about 5% of a cached answer's cost).
    """
    observe = gateway.metrics.observe_request
    authenticated = gateway.auth.enabled
    tracing = gateway.aggregator.tracing

    async def guarded(request: web.Request) -> web.StreamResponse:
        offered = request.headers.get(REQUEST_ID_HEADER)
        request_id = (
            offered if offered and _SAFE_REQUEST_ID.fullmatch(offered) else _new_request_id()
        )
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        gateway.in_flight += 1
        scoped = request.path.startswith("/workflows/") if workflows is None else workflows
        span = _server_span(request, route, tracing) if traced and tracing.live else None
        try:
            try:
                if not scoped:
                    response = await handler(request, gateway)
                elif (refusal := _refusal(request, gateway)) is not None:
                    response = refusal
                elif not counted:
                    response = await handler(request, gateway)
                else:
                    gateway.active += 1
                    try:
                        response = await handler(request, gateway)
                    finally:
                        gateway.active -= 1
            except web.HTTPException as exc:
                response = _http_error(exc)
            except asyncio.CancelledError:
                if request.transport is None:  # the client went away (handler_cancellation)
                    _gone(request, route, started, gateway)
                if span is not None:
                    span[0].set_attribute("error.type", "cancelled")
                raise
            except Exception as exc:
                # With the client gone (its body cut short, say), a connection error is
                # its leaving; any other error is ours all the same.
                if request.transport is not None or not isinstance(exc, OSError):
                    log.exception("unexpected error answering %s %s", request.method, request.path)
                response = problem("internal-error", 500, "the request could not be answered")
            if request.transport is None:  # gone while its answer was made: none is sent
                _gone(request, route, started, gateway)
                if span is not None:
                    span[0].set_attribute("error.type", "client_gone")
                return response
            if not response.prepared:  # a stream sent its headers itself
                response.headers[REQUEST_ID_HEADER] = request_id
                if scoped and authenticated:
                    _keep_private(response.headers)
            elapsed = time.perf_counter() - started
            observe(route, request.method, response.status, elapsed)
            if span is not None:
                _answered(span[0], response.status)
            if gateway.access_log:
                log_access(
                    request,
                    response.status,
                    elapsed,
                    response.headers.get(COMPLETE_HEADER),
                    None if span is None else tracing.ids(span[0]),
                )
            return response
        finally:
            gateway.in_flight -= 1
            REQUEST_ID.reset(token)
            if span is not None:
                span[0].end()
                context.detach(span[1])

    return guarded


def _server_span(
    request: web.Request, route: str, tracing: Tracing
) -> tuple[Span, contextvars.Token[context.Context]]:
    """The request's SERVER span, a child of the caller's trace context when it sent
    a valid one, made current; with the token that makes it current no more."""
    parent = tracing.extract(request.headers)
    method = request.method
    span = tracing.tracer.start_span(f"{method} {route}", context=parent, kind=SpanKind.SERVER)
    if span.is_recording():
        attributes: dict[str, str] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": request.path[:1024],
            "url.scheme": request.scheme,
        }
        workflow_id = request.match_info.get("workflow_id")
        if workflow_id is not None:
            attributes["workflow.id"] = workflow_id[:1024]
        span.set_attributes(attributes)
    return span, context.attach(trace.set_span_in_context(span, parent))


def _answered(span: Span, status: int) -> None:
    """The answer's status on its span; a server error is the span's error."""
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))


def _gone(request: web.Request, route: str, started: float, gateway: Gateway) -> None:
    """A client that went away before its answer: one INFO line (the access line,
    or the gateway's when access logging is off) and the ``499`` label, as nginx
    counts them; not a server error."""
    elapsed = time.perf_counter() - started
    gateway.metrics.observe_request(route, request.method, CLIENT_GONE, elapsed)
    if gateway.access_log:
        log_access(request, CLIENT_GONE, elapsed, None, Tracing.current_ids())
    else:
        log.info(
            "client went away before its answer: %s %s after %.1fms",
            request.method,
            request.path[:200],
            elapsed * 1000,
        )


def _keep_private(headers: MutableMapping[str, str]) -> None:
    """With authentication on, an answer is its tenant's alone: no shared cache may
    keep it, and a private one keeps it per credential."""
    cache_control = headers.get("Cache-Control")
    if cache_control is None:
        headers["Cache-Control"] = "private"
    elif not cache_control.startswith(("private", "no-store")):
        headers["Cache-Control"] = f"private, {cache_control}"
    vary = headers.get("Vary")
    headers["Vary"] = _VARY_CREDENTIALS if vary is None else f"{vary}, {_VARY_CREDENTIALS}"


async def _unmatched(request: web.Request, _: Gateway) -> web.StreamResponse:
    """No route for this method and path: 405 with ``Allow`` when another method
    has one, else 404 (as problems, which aiohttp's own answers are not)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical != _ANY_PATH:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def _refusal(request: web.Request, gateway: Gateway) -> web.Response | None:
    """Overload and authentication: a problem to answer at once, or None to go on."""
    limits = gateway.settings.gateway
    if gateway.active >= limits.max_concurrent_requests:
        return problem(
            "overloaded",
            503,
            f"more than {limits.max_concurrent_requests} requests in flight",
            headers={"Retry-After": str(limits.retry_after_s)},
        )
    tenant = gateway.auth.tenant(request)
    if tenant is None:
        return problem(
            "unauthorized",
            401,
            "send a known key as 'Authorization: Bearer <token>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="status-aggregator"'},
        )
    request[TENANT] = tenant
    if gateway.auth.enabled and gateway.aggregator.tracing.live:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("tenant.id", tenant)
    return None


def _outbound_headers(request: web.Request, gateway: Gateway) -> dict[str, str]:
    """The only headers participants get from us; nothing is copied from the client."""
    headers = {REQUEST_ID_HEADER: REQUEST_ID.get()}
    tracing = gateway.aggregator.tracing
    if not tracing.live and "traceparent" in request.headers:
        # No spans of ours: the caller's trace context goes on as it came. The W3C
        # propagator drops an invalid traceparent (version ff, an all-zero id, a
        # malformed field) and writes a valid one again, byte for byte, with its
        # tracestate. With spans of ours, each call's span names itself instead.
        tracing.forward(headers, tracing.extract(request.headers))
    tenant: str = request[TENANT]
    if gateway.auth.enabled:
        headers[gateway.settings.gateway.auth.tenant_header] = tenant
    return headers


async def get_status(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    aggregator = gateway.aggregator
    workflow_id = request.match_info["workflow_id"]
    scope = request[TENANT]
    validators = request.headers.get("If-None-Match")
    if validators is not None and len(validators) > MAX_IF_NONE_MATCH:
        detail = f"If-None-Match is limited to {MAX_IF_NONE_MATCH} characters"
        return problem("invalid-request", 400, detail)
    try:
        answer = aggregator.cached_answer(workflow_id, scope=scope)
        if answer is None:
            # The outbound headers are made only when a participant is to be asked.
            answer = await aggregator.answer(
                workflow_id, scope=scope, headers=_outbound_headers(request, gateway)
            )
        elif aggregator.tracing.live:  # answer() describes the answers it makes itself
            span = trace.get_current_span()
            aggregator.tracing.describe(span, answer)
            if span.is_recording():
                span.set_attribute("aggregator.reused", True)
    except InvalidWorkflowId as exc:
        return problem("invalid-workflow-id", 400, str(exc))
    return answer_response(
        answer,
        if_none_match=validators,
        retry_after=gateway.settings.gateway.retry_after_s,
        memo=gateway.responses,
    )


async def post_batch(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    aggregator = gateway.aggregator
    limit = gateway.settings.gateway.max_batch
    try:
        batch = BatchRequest.model_validate_json(await request.read())
    except ValidationError as exc:
        return problem("invalid-request", 400, validation_problems(exc)[0])
    if len(batch.ids) > limit:
        return problem("batch-too-large", 400, f"{len(batch.ids)} ids given; at most {limit}")
    entries: list[BatchEntry | None] = []
    valid: list[str] = []
    for workflow_id in batch.ids:
        try:
            aggregator.validate_id(workflow_id)
        except InvalidWorkflowId as exc:
            bad = problem_body("invalid-workflow-id", 400, str(exc))
            entries.append(BatchEntry(workflow_id=workflow_id[:128], http_status=400, problem=bad))
        else:
            entries.append(None)
            valid.append(workflow_id)
    answers = await aggregator.answers(
        valid, scope=request[TENANT], headers=_outbound_headers(request, gateway)
    )
    given = iter(answers)
    results = []
    for entry in entries:
        if entry is None:
            answer = next(given)
            status, code = answer.status(), code_of(answer)
            entry = BatchEntry(
                workflow_id=status.workflow_id,
                http_status=code,
                status=status,
                problem=None if code == 200 else _batch_problem(code),
            )
        results.append(entry)
    privacy = batch_privacy(answers)
    return web.Response(
        body=BatchResponse(results=results).model_dump_json().encode(),
        content_type="application/json",
        headers=None if privacy is None else {"Cache-Control": privacy},
    )


async def get_events(request: web.Request, gateway: Gateway) -> web.StreamResponse:
    """The workflow's status as server-sent events: the current one first (unless it
    is the one ``Last-Event-ID`` names), then one per change; ``final`` ends it."""
    aggregator = gateway.aggregator
    retry_after = {"Retry-After": str(gateway.settings.gateway.retry_after_s)}
    last_id = request.headers.get("Last-Event-ID")
    try:
        changes = aggregator.changes(
            request.match_info["workflow_id"],
            scope=request[TENANT],
            headers=_outbound_headers(request, gateway),
        )
    except InvalidWorkflowId as exc:
        return problem("invalid-workflow-id", 400, str(exc))
    async with aclosing(changes):
        # Until its first answer a stream is a request in flight like any other: its
        # participants are asked, and max_concurrent_requests bounds that.
        gateway.active += 1
        try:
            change = await anext(changes)
        except TooManyWatchers as exc:
            return problem("overloaded", 503, str(exc), headers=retry_after)
        except (StopAsyncIteration, NotOpen):
            return problem("not-ready", 503, "the gateway is shutting down", headers=retry_after)
        finally:
            gateway.active -= 1
        if change.answer.disposition is Disposition.NOT_FOUND:
            return problem(
                "workflow-not-found", 404, NOT_FOUND_DETAIL, workflow_id=change.answer.workflow_id
            )
        validator = etag_of(change.answer.rendering)
        if change.final and last_id == validator:
            # The client has the last event there will be: 204 tells an EventSource
            # to stop reconnecting (a 200 that ends would have it come back forever).
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        headers = stream_headers(REQUEST_ID_HEADER, REQUEST_ID.get())
        if gateway.auth.enabled:
            _keep_private(headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        transport = request.transport
        if transport is None:  # gone already
            return response
        with gateway.streams.opened(response, transport):
            start = b"retry: %d\n\n" % gateway.settings.watch.retry_ms
            if change.final or last_id != validator:
                start += frame(change)
            try:
                await send(response, transport, start)
                async for change in changes:
                    if change.answer.disposition is Disposition.NOT_FOUND:
                        break  # no participant knows it now: a reconnect is told so (404)
                    await send(response, transport, frame(change))
                await response.write_eof()
            except ConnectionError:  # the client has gone: nothing more to send
                pass
            except TimeoutError:  # a client that takes no event for so long has gone too
                transport.abort()
            except Exception:  # a fault of ours: the stream ends, and the client reconnects
                log.exception("a watch of %r failed", change.answer.workflow_id)
        return response


def _batch_problem(code: int) -> Problem:
    if code == 404:
        return problem_body("workflow-not-found", 404, NOT_FOUND_DETAIL)
    return problem_body("participants-unavailable", 503, UNAVAILABLE_DETAIL)


async def healthz(_: web.Request, __: Gateway) -> web.StreamResponse:
    return web.json_response({"status": "alive"})


async def readyz(_: web.Request, gateway: Gateway) -> web.StreamResponse:
    aggregator = gateway.aggregator
    if not aggregator.is_open:
        return problem("not-ready", 503, "the outbound session is not open")
    circuits = {
        name: {"circuit": str(state)} for name, state in aggregator.breaker_states().items()
    }
    shared = aggregator.shared
    store: dict[str, object] = (
        {"backend": "memory"}
        if shared is None
        else {"backend": shared.url, "shared": shared.problem is None, "problem": shared.problem}
    )
    return web.json_response(
        {
            "status": "ready",
            "workflow": aggregator.definition.name,
            "participants": circuits,
            "store": store,
        }
    )


async def metrics(_: web.Request, gateway: Gateway) -> web.StreamResponse:
    body = gateway.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(_: web.Request, gateway: Gateway) -> web.StreamResponse:
    return web.Response(body=gateway.openapi, content_type="application/json")


def create_app(
    settings: Settings,
    *,
    transport: Transport | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tracer_provider: TracerProvider | None = None,
) -> web.Application:
    """The gateway application; its aggregator opens on startup and closes on cleanup.

    ``transport``, ``clock``, ``sleep`` and ``tracer_provider`` are passed to the
    aggregator (tests replace them); the gateway's SERVER spans come from the same
    provider.
    """
    gateway_metrics = GatewayMetrics()
    aggregator = StatusAggregator(
        settings,
        transport=transport,
        clock=clock,
        sleep=sleep,
        observer=gateway_metrics,
        tracer_provider=tracer_provider,
    )
    gateway_metrics.watch(aggregator)
    document = openapi_document(
        max_batch=settings.gateway.max_batch,
        auth=settings.gateway.auth.enabled,
        id_pattern=settings.id_pattern,
        ui=settings.gateway.ui,
    )
    app = web.Application(client_max_size=_BODY_LIMIT, handler_args=HTTP_LIMITS)
    app[GATEWAY] = gateway = Gateway(
        settings=settings,
        aggregator=aggregator,
        auth=Authenticator(settings.gateway.auth),
        metrics=gateway_metrics,
        openapi=json.dumps(document, indent=2).encode(),
        streams=Streams(settings.watch.heartbeat_ms / 1000),
        access_log=settings.gateway.access_log,
    )
    gateway_metrics.count_in_flight(lambda: gateway.in_flight)
    log_parser_refusals(ParserRefusals())

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        async with aggregator:
            logging.getLogger("aggregator.gateway").info(
                "aggregator open: workflow %s, participants %s",
                aggregator.definition.name,
                ", ".join(aggregator.definition.by_name),
            )
            heartbeat = asyncio.create_task(gateway.streams.beat())
            yield
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def end_streams(_: web.Application) -> None:
        # On shutdown, before the grace for requests in flight: every stream ends.
        aggregator.watches.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(end_streams)
    batch = "/workflows/status:batch"
    app.router.add_post(batch, _guarded(post_batch, gateway, batch, workflows=True, traced=True))
    # Any id, newlines and slashes included, reaches the handler and its 400.
    status = "/workflows/{workflow_id}/status"
    app.router.add_get(
        r"/workflows/{workflow_id:[\s\S]+}/status",
        _guarded(get_status, gateway, status, workflows=True, traced=True),
    )
    events = "/workflows/{workflow_id}/events"
    app.router.add_get(
        r"/workflows/{workflow_id:[\s\S]+}/events",
        _guarded(get_events, gateway, events, workflows=True, counted=False),
        allow_head=False,
    )
    for path, handler in (
        ("/healthz", healthz),
        ("/readyz", readyz),
        ("/metrics", metrics),
        ("/openapi.json", openapi),
    ):
        app.router.add_get(path, _guarded(handler, gateway, path, workflows=False))
    if settings.gateway.ui:
        ui = OperatorPage()
        # No authentication for the files: the page asks for the key, and its data
        # requests carry it.
        for path, page_handler in (("/ui", ui.page), ("/ui/{asset}", ui.asset)):
            app.router.add_get(path, _guarded(page_handler, gateway, path, workflows=False))
    # Last, tried after every other route: any other method and path.
    app.router.add_route(
        "*", r"/{path:[\s\S]*}", _guarded(_unmatched, gateway, "unmatched", workflows=None)
    )
    return app


def process_app(settings: Settings) -> web.Application:
    """The gateway as the only application of its process (``serve``, gunicorn).

    Logging is set up for the process, its lines written in batches while the
    application runs (every line is written by the end of its cleanup, see
    ``_lines``), and once the aggregator is open the garbage collector is tuned
    for a long-running server (see ``_collector``). With
    ``$PROMETHEUS_MULTIPROC_DIR`` set, the process is one of several workers and
    ``/metrics`` adds the others' counts to its own (see ``_workers``).
    """
    configure_logging(settings.gateway.log_format)
    app = create_app(settings)

    async def batched_lines(_: web.Application) -> AsyncIterator[None]:
        stop = batch_lines(asyncio.get_running_loop())
        try:
            yield
        finally:
            stop()  # the last lines, those of requests answered during shutdown included

    # First in, last out: the lines of every other cleanup are flushed too.
    app.cleanup_ctx.insert(0, batched_lines)

    async def tune(_: web.Application) -> None:
        tune_collector(settings.gateway.gc_young_threshold)

    app.on_startup.append(tune)
    shared = os.environ.get(DIRECTORY_ENV)
    if shared:
        metrics = app[GATEWAY].metrics

        async def exchange(_: web.Application) -> AsyncIterator[None]:
            worker = Exchange(Path(shared), metrics)
            if not worker.opened():
                yield
                return
            metrics.service = worker.service
            task = asyncio.create_task(worker.run())
            yield
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        app.cleanup_ctx.append(exchange)
    return app


async def gunicorn_app() -> web.Application:
    """An app factory for gunicorn's aiohttp workers, configured from the environment.

    ``gunicorn 'aggregator.gateway:gunicorn_app' --worker-class
    aiohttp.GunicornUVLoopWebWorker``; the file is ``$STATUS_AGGREGATOR_CONFIG``.
    """
    try:
        settings = Settings.from_file(os.environ.get(CONFIG_ENV, "aggregator.toml"), env=os.environ)
    except ConfigError as exc:
        print(f"status-aggregator: {exc}", file=sys.stderr)
        raise SystemExit(3) from None  # gunicorn's "worker failed to boot": no respawning
    return process_app(settings)
