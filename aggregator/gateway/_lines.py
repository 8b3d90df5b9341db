"""Log lines written in batches: one write for many lines, at least every 100 ms."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TextIO

FLUSH_INTERVAL = 0.1  # seconds a line waits in memory at most while batching

# A line whose formatting waits for the flush: a tuple whose first item makes the
# line (newline included) from the tuple.
Entry = tuple[Any, ...]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """What batching needs of an event loop (tests pass a fake to run its timer by hand)."""

    def call_later(self, delay: float, callback: Callable[[], object], /) -> Cancellable: ...


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that can hold its lines and write many in one write.

    Until :meth:`batch` is called, and after it is stopped, every record is written
    and flushed at once, as by ``StreamHandler``. While batching, lines wait in
    ``pending`` and go out together when :meth:`flush` runs: every ``interval``
    seconds on the event loop's timer, at once for a record at WARNING or above (no
    error waits behind a crash), and when batching stops or ``logging.shutdown()``
    runs at exit. A crash that skips all of these (SIGKILL, a fault in C code,
    ``os._exit``) loses what waits: at most the last ``interval``'s lines.

    Besides formatted records, ``pending`` takes entries (see ``Entry``) appended
    by a caller that formats its own lines, the access log (``_access``): their
    formatting too is left to the flush, off the request's path. Appends and pops
    of a deque are atomic, so any thread may append.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.pending: deque[str | Entry] = deque()
        self._batching = 0  # batch() calls not yet stopped

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.pending.append(line)
        if not self._batching or record.levelno >= logging.WARNING:
            self.flush()

    def flush(self) -> None:
        """Write every waiting line in one write, in the order they came."""
        self.acquire()
        try:
            pending = self.pending
            if pending:
                # Lines appended meanwhile (another thread) wait for the next flush.
                waiting = [pending.popleft() for _ in range(len(pending))]
                try:
                    text = "".join([w if isinstance(w, str) else w[0](w) for w in waiting])
                    self.stream.write(text)
                except Exception:
                    self.handleError(_unwritten(len(waiting)))
            super().flush()
        finally:
            self.release()

    def batch(
        self,
        timers: Timers,
        interval: float = FLUSH_INTERVAL,
        *,
        every: Callable[[], None] = lambda: None,
    ) -> Callable[[], None]:
        """Hold lines from now on, flushed every ``interval`` seconds by ``timers``
        (the running event loop), ``every`` called before each of those flushes;
        returns the function that stops batching and flushes."""
        handle: Cancellable | None = None

        def tick() -> None:
            nonlocal handle
            handle = timers.call_later(interval, tick)
            every()
            self.flush()

        def stop() -> None:
            nonlocal handle
            if handle is not None:
                handle.cancel()
                handle = None
                self._batching -= 1
            self.flush()

        self._batching += 1
        handle = timers.call_later(interval, tick)
        return stop


def _unwritten(count: int) -> logging.LogRecord:
    """A record for ``handleError`` to name the lines a failed write lost."""
    return logging.makeLogRecord({"msg": "%d log lines could not be written", "args": (count,)})
