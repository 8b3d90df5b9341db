"""The log formatters' time stamps."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.gateway._logs import TEXT_FORMAT, JsonFormatter, TextFormatter

# Shared by every example, so that a second's text is both made anew and reused.
TEXT, JSON = TextFormatter(), JsonFormatter()


@settings(max_examples=300, deadline=None)
@given(second=st.integers(0, 2**33) | st.sampled_from([0, 1, 59, 60]), millis=st.integers(0, 999))
def test_the_time_stamps_are_those_logging_and_datetime_make(second: int, millis: int) -> None:
    """The second's text made once a second changes nothing: the standard
    Formatter's time for text lines, datetime's ISO form for JSON lines (half a
    millisecond in, so that no clock rounds either way)."""
    made = logging.makeLogRecord({"msg": "m", "args": None})
    made.created = second + (millis + 0.5) / 1000
    made.msecs = float(millis)
    assert TEXT.formatTime(made) == logging.Formatter(TEXT_FORMAT).formatTime(made)
    iso = datetime.fromtimestamp(made.created, UTC).isoformat(timespec="milliseconds")
    assert JSON.formatTime(made) == iso
