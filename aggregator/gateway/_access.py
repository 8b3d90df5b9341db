"""The access log: one line a request, cheap enough to leave on.

While the process's logging is ``configure_logging``'s (``serve``, gunicorn) and
its lines are batched (``batch_lines``, for the application's lifetime), a
request leaves only a tuple of its values with the handler: the line is
formatted at the next flush, with the configured formatter's own time stamp, and
written with the others (``_lines``). A ``LogRecord`` made, filtered and
formatted by ``logging`` on every request cost a third of a cached answer's
throughput. Anywhere else (an embedding service's logging, pytest's caplog), and
while a handler, filter or level added since asks for it (checked at every
flush), the line is an ordinary record of the ``aggregator.access`` logger, its
fields as extras. Either way the line says the same, byte for byte
(tests/gateway/test_access.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string

from aiohttp import web

from ._lines import Entry, Timers
from ._logs import (
    REQUEST_ID,
    TEXT_FORMAT,
    JsonFormatter,
    TextFormatter,
    access_log,
    configured_handler,
    direct_handler,
)

_LOGGER = access_log.name
# The record's message and TEXT_FORMAT around it, in one %-format.
_TEXT = (
    TEXT_FORMAT
    % {
        "asctime": "%s,%03d",
        "levelname": "INFO",
        "request_id": "%s",
        "name": _LOGGER,
        "message": "%s %s %d %.1fms complete=%s",
    }
    + "\n"
)

Render = Callable[[Entry], str]
# Set while access lines may skip logging: the handler's append, and what makes
# an entry's line. Read and set on the event loop's thread only.
_append: Callable[[Entry], None] | None = None
_render: Render | None = None


def log_access(
    request: web.Request,
    status: int,
    elapsed: float,
    complete: str | None,
    trace_ids: tuple[str, str] | None = None,
) -> None:
    """One request's line: its answer's ``status``, ``elapsed`` seconds, and
    ``complete`` as the answer's header said (None: no header); ``trace_ids``, the
    request's span's trace and span id while it is recorded, are fields of a JSON
    line (a text line keeps its format)."""
    append = _append
    if append is not None:
        # The URL, not its text: str() of it, like the line, waits for the flush.
        url = request.rel_url
        append(
            (
                _render,
                time.time(),
                REQUEST_ID.get(),
                request.method,
                url,
                status,
                elapsed,
                complete,
                trace_ids,
            )
        )
        return
    extra: dict[str, object] = {
        "method": request.method,
        "path": request.path[:200],
        "status": status,
        "latency_ms": round(elapsed * 1000, 2),
        "complete": complete,
    }
    if trace_ids is not None:
        extra["trace_id"], extra["span_id"] = trace_ids
    access_log.info(
        "%s %s %d %.1fms complete=%s",
        request.method,
        request.path_qs[:200],
        status,
        elapsed * 1000,
        complete or "-",
        extra=extra,
    )


def batch_lines(timers: Timers) -> Callable[[], None]:
    """Batch the lines of the handler ``configure_logging`` installed, flushed by
    ``timers`` (the running loop), access lines straight into the batch while
    logging's configuration lets them; returns the function that stops and
    flushes (see ``BatchedStreamHandler.batch``)."""
    handler = configured_handler()
    if handler is None:
        return lambda: None

    def route() -> None:
        """Decide again whether access lines may skip ``logging`` (each flush)."""
        global _append, _render
        direct = direct_handler()
        if direct is None or direct[0] is not handler:  # logging configured anew
            _append = None
            return
        formatter = direct[1]
        if isinstance(formatter, TextFormatter):
            _render = _text_render(formatter)
        else:
            _render = _json_render(formatter)
        _append = handler.pending.append

    stop = handler.batch(timers, every=route)
    route()

    def stopping() -> None:
        global _append
        _append = None
        stop()

    return stopping


def _text_render(formatter: TextFormatter) -> Render:
    """What makes an entry's line as ``formatter`` formats the access record above."""
    second = formatter.second

    def render(entry: Entry) -> str:
        _, created, request_id, method, url, status, elapsed, complete, _ = entry
        return _TEXT % (
            second(created),
            (created - int(created)) * 1000,
            request_id,
            method,
            str(url)[:200],  # request.path_qs
            status,
            elapsed * 1000,
            complete or "-",
        )

    return render


def _json_render(formatter: JsonFormatter) -> Render:
    """What makes an entry's line as ``formatter`` formats the access record above:
    ``json.dumps`` of its entry, the extras last."""
    stamp = formatter.stamp

    def render(entry: Entry) -> str:
        _, created, request_id, method, url, status, elapsed, complete, trace_ids = entry
        traced = (
            ""
            if trace_ids is None
            else f', "trace_id": "{trace_ids[0]}", "span_id": "{trace_ids[1]}"'
        )
        message = (
            f"{method} {str(url)[:200]} {status} {elapsed * 1000:.1f}ms complete={complete or '-'}"
        )
        return (
            f'{{"time": "{stamp(created)}", "level": "info", "logger": "{_LOGGER}", '
            f'"message": {_json_string(message)}, "request_id": {_json_string(request_id)}, '
            f'"method": {_json_string(method)}, "path": {_json_string(url.path[:200])}, '
            f'"status": {status}, "latency_ms": {round(elapsed * 1000, 2)!r}, '
            f'"complete": {"null" if complete is None else _json_string(complete)}{traced}}}\n'
        )

    return render
