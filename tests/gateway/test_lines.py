"""Log lines in batches: none lost, none waiting longer than the timer lets it.

No test waits for time to pass: the flush timer is a fake run by hand.
"""

from __future__ import annotations

import io
import logging

import pytest

from aggregator.gateway._lines import FLUSH_INTERVAL, BatchedStreamHandler
from tests.helpers import Timers


class Writes(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": message, "levelno": level, "name": "test"})


def plain(stream: io.StringIO) -> BatchedStreamHandler:
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def test_unbatched_every_record_is_written_at_once() -> None:
    stream = Writes()
    handler = plain(stream)
    handler.handle(record("one"))
    handler.handle(record("two"))
    assert (stream.getvalue(), stream.writes) == ("one\ntwo\n", 2)


def test_batched_lines_wait_for_the_timer_and_go_out_in_one_write() -> None:
    stream, timers = Writes(), Timers()
    handler = plain(stream)
    handler.batch(timers)
    for message in ("one", "two", "three"):
        handler.handle(record(message))
    assert stream.getvalue() == ""
    assert [t.delay for t in timers.scheduled] == [FLUSH_INTERVAL] == [0.1]
    timers.fire()
    assert (stream.getvalue(), stream.writes) == ("one\ntwo\nthree\n", 1)
    # The next flush is due one interval later, and so on while batching lasts.
    assert [t.delay for t in timers.scheduled] == [0.1, 0.1]
    handler.handle(record("four"))
    timers.fire()
    assert stream.getvalue().endswith("three\nfour\n") and stream.writes == 2


def test_a_warning_goes_out_at_once_after_the_lines_before_it() -> None:
    stream, timers = Writes(), Timers()
    handler = plain(stream)
    handler.batch(timers)
    handler.handle(record("info"))
    handler.handle(record("trouble", logging.WARNING))
    assert stream.getvalue() == "info\ntrouble\n"


def test_stopping_writes_what_waits_and_ends_the_batching() -> None:
    stream, timers = Writes(), Timers()
    handler = plain(stream)
    stop = handler.batch(timers)
    handler.handle(record("waiting"))
    stop()
    assert stream.getvalue() == "waiting\n"
    assert all(t.cancelled for t in timers.scheduled)
    handler.handle(record("after"))  # written at once again
    assert stream.getvalue() == "waiting\nafter\n"
    stop()  # twice is harmless
    assert stream.getvalue() == "waiting\nafter\n"


def test_logging_shutdown_writes_what_waits() -> None:
    """At interpreter exit ``logging.shutdown`` flushes every handler (atexit)."""
    stream, timers = Writes(), Timers()
    handler = plain(stream)
    handler.batch(timers)
    handler.handle(record("last words"))
    logging.shutdown([lambda: handler])
    assert stream.getvalue() == "last words\n"


def test_entries_are_rendered_at_the_flush_in_their_place() -> None:
    stream, timers = Writes(), Timers()
    handler = plain(stream)
    handler.batch(timers)
    rendered: list[str] = []

    def render(entry: tuple[object, ...]) -> str:
        rendered.append(str(entry[1]))
        return f"entry {entry[1]}\n"

    handler.handle(record("first"))
    handler.pending.append((render, 1))
    handler.handle(record("second"))
    handler.pending.append((render, 2))
    assert rendered == []
    timers.fire()
    assert stream.getvalue() == "first\nentry 1\nsecond\nentry 2\n"


def test_a_write_that_fails_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    reported: list[logging.LogRecord] = []
    handler = plain(Broken())
    monkeypatch.setattr(handler, "handleError", reported.append)
    handler.batch(Timers())
    handler.handle(record("one"))
    handler.handle(record("two"))
    handler.flush()
    assert [r.getMessage() for r in reported] == ["2 log lines could not be written"]
    assert not handler.pending
