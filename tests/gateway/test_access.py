"""The access log: a line says the same whichever way it takes; none is lost.

No test waits for time to pass: the flush timer is a fake run by hand.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.gateway import _access, _logs, process_app
from aggregator.gateway._access import batch_lines, log_access
from aggregator.gateway._lines import BatchedStreamHandler
from aggregator.gateway._logs import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
)
from tests.gateway.harness import gateway_settings
from tests.helpers import Timers
from tests.loopback import LoopbackParticipants, healthy


@pytest.fixture
def process_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """``configure_logging`` changes the process's logging; it is put back after.
    The stream yielded stands for stderr (see ``configured``)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(_logs, "_configured", None)
    monkeypatch.setattr(_access, "_append", None)
    try:
        yield io.StringIO()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def to(stream: io.StringIO) -> BatchedStreamHandler:
    """The handler ``configure_logging`` installed, writing to ``stream``."""
    handler = _logs.configured_handler()
    assert handler is not None
    handler.setStream(stream)
    return handler


def configured(log_format: str, stream: io.StringIO) -> tuple[BatchedStreamHandler, Timers]:
    """``configure_logging``, its lines batched by timers run by hand."""
    configure_logging(log_format)
    handler = to(stream)
    timers = Timers()
    batch_lines(timers)
    return handler, timers


def asked(path: str = "/workflows/o-1/status", method: str = "GET") -> web.Request:
    return make_mocked_request(method, path)


def test_access_lines_skip_logging_only_while_it_would_bring_them_to_the_handler(
    process_logging: io.StringIO,
) -> None:
    seen: list[logging.LogRecord] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler, timers = configured("text", process_logging)
    log_access(asked(), 200, 0.001, "true")
    assert len(handler.pending) == 1 and isinstance(handler.pending[0], tuple)
    # A handler added since: from the next flush on, lines are records again.
    extra = Seen()
    logging.getLogger("aggregator").addHandler(extra)
    try:
        timers.fire()
        log_access(asked(), 200, 0.001, "true")
        assert [getattr(r, "status", None) for r in seen] == [200]
        assert isinstance(handler.pending[-1], str)  # the record's formatted line
    finally:
        logging.getLogger("aggregator").removeHandler(extra)
    timers.fire()
    log_access(asked(), 200, 0.001, "true")
    assert len(seen) == 1 and isinstance(handler.pending[-1], tuple)


def test_logging_configured_anew_gets_its_lines_at_once(process_logging: io.StringIO) -> None:
    """A handler nobody batches is never left holding access lines."""
    _, timers = configured("text", process_logging)
    configure_logging("text")
    stream = io.StringIO()
    again = to(stream)
    timers.fire()
    log_access(asked(), 200, 0.001, "true")
    assert not again.pending
    assert " aggregator.access: GET /workflows/o-1/status 200 " in stream.getvalue()


@pytest.mark.parametrize(
    "change",
    [
        lambda: logging.getLogger("aggregator.access").setLevel(logging.WARNING),
        lambda: logging.getLogger().addHandler(logging.NullHandler()),
        lambda: logging.getLogger("aggregator.access").addFilter(logging.Filter("x")),
        lambda: setattr(logging.getLogger("aggregator"), "propagate", False),
        lambda: logging.getLogger().handlers[0].setLevel(logging.WARNING),
        lambda: logging.getLogger().handlers[0].setFormatter(logging.Formatter()),
        lambda: logging.getLogger().handlers[0].addFilter(logging.Filter("x")),
    ],
)
@pytest.mark.usefixtures("process_logging")
def test_any_other_configuration_takes_the_logging_path(change: Callable[[], None]) -> None:
    loggers = [logging.getLogger(n) for n in ("aggregator", "aggregator.access")]
    saved = [(lg.level, lg.filters[:], lg.propagate) for lg in loggers]
    configure_logging("text")
    assert _logs.direct_handler() is not None
    try:
        change()
        assert _logs.direct_handler() is None
    finally:
        for lg, (level, filters, propagate) in zip(loggers, saved, strict=True):
            lg.setLevel(level)
            lg.filters[:] = filters
            lg.propagate = propagate


@pytest.mark.usefixtures("process_logging")
def test_without_configure_logging_lines_are_records(caplog: pytest.LogCaptureFixture) -> None:
    stop = batch_lines(Timers())
    caplog.set_level(logging.INFO, logger="aggregator.access")
    log_access(asked("/workflows/o-9/status?x=1"), 404, 0.0123, None)
    stop()
    (line,) = [r for r in caplog.records if r.name == "aggregator.access"]
    assert line.getMessage() == "GET /workflows/o-9/status?x=1 404 12.3ms complete=-"
    assert (getattr(line, "path", None), getattr(line, "latency_ms", None)) == (
        "/workflows/o-9/status",
        12.3,
    )


PIECES = ["/", "a", "Z9", "é", "%0A", "%22", "%5C", "%25", "%E2%9C%93", "?", "=", "&", "..", ";"]


@settings(max_examples=200, deadline=None)
@given(
    log_format=st.sampled_from(["text", "json"]),
    path=st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
    method=st.from_regex(r"[A-Z]{1,12}", fullmatch=True),
    status=st.integers(100, 599),
    elapsed=st.floats(0, 120, allow_nan=False),
    complete=st.none() | st.sampled_from(["true", "false"]) | st.text(max_size=20),
    request_id=st.text(max_size=40),
    second=st.integers(0, 2**33),
    millis=st.integers(0, 999),
    trace_ids=st.none()
    | st.tuples(
        st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
    ),
)
def test_an_access_line_is_the_same_through_either_path(
    log_format: str,
    path: str,
    method: str,
    status: int,
    elapsed: float,
    complete: str | None,
    request_id: str,
    second: int,
    millis: int,
    trace_ids: tuple[str, str] | None,
) -> None:
    """The line rendered from an entry at the flush is the configured formatter's
    line for the record ``logging`` would have made (half a millisecond in, so no
    clock rounds either way)."""
    created = second + (millis + 0.5) / 1000
    formatter = TextFormatter() if log_format == "text" else JsonFormatter()
    request = asked("/workflows/" + path, method)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    keep.addFilter(RequestIdFilter())
    access = logging.getLogger("aggregator.access")
    level, propagate = access.level, access.propagate
    access.addHandler(keep)
    access.setLevel(logging.INFO)
    access.propagate = False
    token = REQUEST_ID.set(request_id)
    try:
        log_access(request, status, elapsed, complete, trace_ids)  # no shortcut: a record
    finally:
        REQUEST_ID.reset(token)
        access.removeHandler(keep)
        access.setLevel(level)
        access.propagate = propagate
    (made,) = records
    made.created = created
    render = (
        _access._text_render(formatter)
        if isinstance(formatter, TextFormatter)
        else _access._json_render(formatter)
    )
    entry = (
        render,
        created,
        request_id,
        method,
        request.rel_url,
        status,
        elapsed,
        complete,
        trace_ids,
    )
    assert render(entry) == formatter.format(made) + "\n"


def test_json_lines_are_json_with_the_fields_of_the_record(process_logging: io.StringIO) -> None:
    _, timers = configured("json", process_logging)
    token = REQUEST_ID.set("req-7")
    try:
        log_access(asked("/workflows/o%22%0A/status?q=1"), 503, 0.25, "false")
    finally:
        REQUEST_ID.reset(token)
    timers.fire()
    line = json.loads(process_logging.getvalue())
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "info",
        "logger": "aggregator.access",
        "message": "GET /workflows/o%22%0A/status?q=1 503 250.0ms complete=false",
        "request_id": "req-7",
        "method": "GET",
        "path": '/workflows/o"\n/status',
        "status": 503,
        "latency_ms": 250.0,
        "complete": "false",
    }


async def test_a_clean_shutdown_writes_every_access_line(
    process_logging: io.StringIO, participants: LoopbackParticipants
) -> None:
    """Lines still waiting, those of a request answered while the gateway shuts
    down included, are written by the end of the application's cleanup."""
    healthy(participants)
    release = asyncio.Event()
    answer_payment = participants.behaviours["payment"]

    async def slow(request: web.Request) -> web.StreamResponse:
        if "o-slow" in request.path:
            await release.wait()
        return await answer_payment(request)

    participants.behaviours["payment"] = slow
    settings = gateway_settings(participants)
    gateway = settings.gateway.model_copy(update={"gc_young_threshold": 0})
    app = process_app(settings.model_copy(update={"gateway": gateway}))
    to(process_logging)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=60)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/workflows"

    async with aiohttp.ClientSession() as client:

        async def ask(workflow_id: str, request_id: str) -> int:
            headers = {"X-Request-ID": request_id}
            async with client.get(f"{base}/{workflow_id}/status", headers=headers) as response:
                return response.status

        assert [await ask(f"o-{n}", f"quick-{n}") for n in range(5)] == [200] * 5
        slow_one = asyncio.create_task(ask("o-slow", "slow-1"))
        while not any("o-slow" in r.path for r in participants.requests_to("payment")):
            await participants.until_received(len(participants.received) + 1)
        closing = asyncio.create_task(runner.cleanup())
        await asyncio.sleep(0)  # the cleanup has begun: no new connection is taken
        release.set()
        assert await slow_one == 200
        await closing
    lines = process_logging.getvalue().splitlines()
    access = [line for line in lines if " aggregator.access: " in line]
    ids = [line.split("[", 1)[1].split("]", 1)[0] for line in access]
    assert sorted(ids) == sorted([*(f"quick-{n}" for n in range(5)), "slow-1"])
    assert all(" 200 " in line for line in access)
