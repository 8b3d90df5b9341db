"""Logging: human-readable lines or JSON lines, each carrying the request id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp.http_exceptions import HttpProcessingError

from aggregator import LogBudget, Tracing

from ._lines import BatchedStreamHandler

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

access_log = logging.getLogger("aggregator.access")
log = logging.getLogger("aggregator.gateway")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}
TEXT_FORMAT = "%(asctime)s %(levelname)-5s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds the request id to every record, and while a recorded span is current its
    ``trace_id`` and ``span_id`` (lower-case hex; fields of a JSON line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        if not hasattr(record, "trace_id"):
            ids = Tracing.current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


class _Seconds:
    """The text of a second, made once a second: a formatter's time stamp needs
    only its milliseconds added."""

    __slots__ = ("_cached", "_text")

    def __init__(self, text: Callable[[int], str]) -> None:
        self._text = text
        self._cached = (0, text(0))  # one tuple, replaced whole: threads read it safely

    def __call__(self, created: float) -> str:
        second = int(created)
        cached = self._cached
        if cached[0] != second:
            cached = (second, self._text(second))
            self._cached = cached
        return cached[1]


def _local_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[: -len("+00:00")]


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, its time local to the millisecond (``2026-11-28 21:33:00,123``)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self.second = _Seconds(_local_second)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        created = record.created
        return f"{self.second(created)},{int((created - int(created)) * 1000):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, and any extras
    (``trace_id`` and ``span_id`` among them while a recorded span was current)."""

    def __init__(self) -> None:
        super().__init__()
        self.second = _Seconds(_utc_second)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.stamp(record.created)

    def stamp(self, created: float) -> str:
        """UTC to the millisecond: ``2026-11-28T21:33:00.123+00:00``."""
        return f"{self.second(created)}.{int((created - int(created)) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


@dataclass(frozen=True, slots=True)
class _Configured:
    handler: BatchedStreamHandler
    formatter: TextFormatter | JsonFormatter
    request_ids: RequestIdFilter


_configured: _Configured | None = None
_root = logging.getLogger()


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """The process's logging: one handler on stderr, text or JSON lines, each with
    its request id; lines are written in batches while ``_access.batch_lines`` runs."""
    global _configured
    handler = BatchedStreamHandler(sys.stderr)
    request_ids = RequestIdFilter()
    handler.addFilter(request_ids)
    formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handler.setFormatter(formatter)
    _root.handlers[:] = [handler]
    _root.setLevel(level)
    _configured = _Configured(handler, formatter, request_ids)


def configured_handler() -> BatchedStreamHandler | None:
    """The handler ``configure_logging`` installed, if it did."""
    return None if _configured is None else _configured.handler


def direct_handler() -> tuple[BatchedStreamHandler, TextFormatter | JsonFormatter] | None:
    """``configure_logging``'s handler and formatter while an INFO line of the access
    logger would reach that handler alone, with nothing but its request id added on
    the way; else None: logging is someone else's (an embedding service, pytest's
    caplog), or a level, handler or filter was added since.
    """
    configured = _configured
    if configured is None or access_log.filters or not access_log.isEnabledFor(logging.INFO):
        return None
    logger: logging.Logger | None = access_log
    while logger is not None and logger is not _root:
        if logger.handlers or not logger.propagate:
            return None
        logger = logger.parent
    handler = configured.handler
    handlers, filters = _root.handlers, handler.filters
    if (
        len(handlers) != 1
        or handlers[0] is not handler
        or handler.level > logging.INFO
        or handler.formatter is not configured.formatter
        or len(filters) != 1
        or filters[0] is not configured.request_ids
    ):
        return None
    return handler, configured.formatter


class ParserRefusals(logging.Filter):
    """aiohttp logs a request its HTTP parser refuses (NUL or CR/LF in the path, a
    header over the limit, too many headers, Content-Length with Transfer-Encoding)
    at ERROR with a traceback, once per request: any client can flood the log.
    This filter on the ``aiohttp.server`` logger turns each into one WARNING line
    with the peer's address and the reason, at most ``burst`` lines per ``window``
    seconds; the next line says how many were left out.
    """

    def __init__(
        self,
        *,
        burst: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._budget = LogBudget(burst=burst, window=window, clock=clock)

    def filter(self, record: logging.LogRecord) -> bool:
        refused = record.exc_info[1] if record.exc_info else None
        if not isinstance(refused, HttpProcessingError):
            return True
        left_out = self._budget.take()
        if left_out is None:
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "-"
        # The first line only: aiohttp shows the offending bytes on the next ones.
        lines = (refused.message or type(refused).__name__).splitlines() or [""]
        reason = lines[0].rstrip(": ")[:160]
        record.msg = "refused a malformed request from %s: HTTP %d, %s"
        record.args = (peer, refused.code, reason)
        if left_out:
            record.msg += " (%d more refused since the last line, not logged)"
            record.args = (*record.args, left_out)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def log_parser_refusals(refusals: ParserRefusals) -> None:
    """Install ``refusals`` on aiohttp's server logger, in place of an earlier one."""
    server = logging.getLogger("aiohttp.server")
    for earlier in [f for f in server.filters if isinstance(f, ParserRefusals)]:
        server.removeFilter(earlier)
    server.addFilter(refusals)
