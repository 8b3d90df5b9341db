"""Where an access line's cost goes, in-process: microseconds of CPU a line.

python bench/access_log.py [--lines 5000] [--rounds 5]

Each way of logging a request's line is timed on requests made by aiohttp's test
helper, the lines written to /dev/null (best of the rounds):

- logging: ``access_log.info`` through ``configure_logging``'s handler as it was
  before batching: a ``LogRecord``, its filter and formatter, a write and a flush
  for every line; then its parts alone (the record; the formatting);
- queue: the standard library's ``QueueHandler`` in front of that handler (the
  record is made and formatted on the caller's side, then queued);
- entries: what a request does now (a tuple left in the batch), and what the
  flush does for each line (formatting and one write for all).
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from aggregator.gateway import _access, _logs
from aggregator.gateway._access import batch_lines, log_access
from aggregator.gateway._logs import REQUEST_ID, access_log, configure_logging


class Timers:
    """Batching's timer, never fired: the benchmark flushes by hand."""

    def call_later(self, delay: float, callback: Callable[[], object], /) -> Timers:
        return self

    def cancel(self) -> None:
        pass


class Sink:
    """A queue its listener empties at once (only the handler's side is timed)."""

    def put_nowait(self, item: object) -> None:
        pass


def best(rounds: int, lines: int, run: Callable[[list[web.Request]], object]) -> float:
    """CPU microseconds a line, best of ``rounds``; fresh requests every round
    (aiohttp keeps a request's path once worked out); the garbage collector off
    while timing, as timeit has it."""
    fastest = float("inf")
    template = make_mocked_request("GET", "/")
    for _ in range(rounds):
        requests = [
            template.clone(rel_url=URL.build(path=f"/workflows/o-{n}/status", encoded=True))
            for n in range(lines)
        ]
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            run(requests)
            fastest = min(fastest, time.process_time() - started)
        finally:
            gc.enable()
    return fastest / lines * 1e6


def each(requests: list[web.Request]) -> None:
    for request in requests:
        log_access(request, 200, 0.00123, "true")


def measure(log_format: str, lines: int, rounds: int) -> None:
    configure_logging(log_format)
    handler = _logs.configured_handler()
    assert handler is not None
    formatter = handler.formatter
    assert formatter is not None

    def say(what: str, us: float) -> None:
        print(f"{log_format:4s} {what:52s} {us:6.2f} us", flush=True)

    say("logging: record, filter, format, write + flush", best(rounds, lines, each))

    def records(requests: list[web.Request]) -> None:
        for request in requests:
            access_log.makeRecord(
                access_log.name,
                logging.INFO,
                __file__,
                1,
                "%s %s %d %.1fms complete=%s",
                (request.method, request.path_qs, 200, 1.23, "true"),
                None,
                extra={"method": "GET", "path": request.path, "status": 200},
            )

    say("  of which the record alone (and the request's path)", best(rounds, lines, records))
    made = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 1, "GET /p 200 1.2ms complete=true", (), None
    )
    made.request_id = "0123456789abcdef0123456789abcdef"
    say(
        "  of which the formatting alone",
        best(rounds, lines, lambda r: [formatter.format(made) for _ in r]),
    )

    root = logging.getLogger()
    queued = logging.handlers.QueueHandler(Sink())  # type: ignore[arg-type]
    queued.setFormatter(formatter)
    for request_ids in handler.filters:
        queued.addFilter(request_ids)
    root.handlers[:] = [queued]
    say("queue: record, format, put (QueueHandler)", best(rounds, lines, each))
    root.handlers[:] = [handler]

    stop = batch_lines(Timers())
    say("entries: a request's part (a tuple in the batch)", best(rounds, lines, each))
    handler.pending.clear()

    def flushed(requests: list[web.Request]) -> None:
        for request in requests:
            log_access(request, 200, 0.00123, "true")
        started = time.process_time()
        handler.flush()
        flush_times.append(time.process_time() - started)
        handler.pending.clear()

    flush_times: list[float] = []
    best(rounds, lines, flushed)
    say("entries: the flush's part (format, one write)", min(flush_times) / lines * 1e6)
    stop()
    assert _access._append is None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/access_log.py")
    parser.add_argument("--lines", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the lines go to /dev/null; the results to stdout
    REQUEST_ID.set("0123456789abcdef0123456789abcdef")
    for log_format in ("text", "json"):
        measure(log_format, args.lines, args.rounds)
    print(f"(Python {sys.version.split()[0]}, each line's CPU time, best of {args.rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
