"""Server-sent events: a workflow's status as a stream, one event per change.

Each change is framed once (``frame``) and the same bytes are written to every
stream watching that workflow; a heartbeat comment goes to every open stream
at a fixed interval, from one task, so an idle stream costs no timer of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, MutableMapping
from functools import lru_cache
from typing import Any

from aiohttp import web

from aggregator import Change

from ._render import etag_of

CONTENT_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
# A client that has taken nothing for this long while a write waits has gone, or
# does not read: its stream ends rather than hold a watcher's place.
WRITE_TIMEOUT_S = 30.0
# Heartbeats written in one turn of the event loop: 10,000 at once held events back
# for up to 200 ms (bench/RESULTS.md).
_BEATS_A_TURN = 256


@lru_cache(maxsize=256)  # the changes being written now; framing one again is cheap
def frame(change: Change) -> bytes:
    """The event for one change (``status``, or ``final`` for the last), its ``id``
    the answer's validator (the status's ETag). Framed once per change, whatever the
    number of streams it is written to; the JSON is one line, so one ``data:`` line."""
    kind = b"final" if change.final else b"status"
    validator = etag_of(change.answer.rendering).encode()
    return b"event: %b\nid: %b\ndata: %b\n\n" % (kind, validator, change.answer.json())


def stream_headers(request_id_header: str, request_id: str) -> MutableMapping[str, str]:
    return {
        "Content-Type": CONTENT_TYPE,
        # Every event is news: no cache may keep or replay the stream, and no proxy
        # may hold it back to compress it.
        "Cache-Control": "no-store, no-transform",
        # nginx buffers responses unless told not to; an event must not wait for more.
        "X-Accel-Buffering": "no",
        request_id_header: request_id,
    }


async def send(response: web.StreamResponse, transport: asyncio.Transport, data: bytes) -> None:
    """Write to a stream; TimeoutError when the client takes nothing for too long.

    A write into an empty buffer never waits unless it is larger than the buffer's
    high-water mark, so only the others are timed (a timeout on every write cost
    6 us an event and stream, bench/RESULTS.md).
    """
    if (
        not transport.get_write_buffer_size()
        and len(data) <= transport.get_write_buffer_limits()[1]
    ):
        await response.write(data)
        return
    async with asyncio.timeout(WRITE_TIMEOUT_S):
        await response.write(data)


class Streams:
    """The event streams open now, and their heartbeat."""

    __slots__ = ("_interval", "_open")

    def __init__(self, heartbeat: float) -> None:
        self._interval = heartbeat
        # Each stream's transport, and the task of the handler writing to it.
        self._open: dict[web.StreamResponse, tuple[asyncio.Transport, asyncio.Task[Any]]] = {}

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def opened(self, response: web.StreamResponse, transport: asyncio.Transport) -> Iterator[None]:
        """While the calling handler writes to ``response``."""
        task = asyncio.current_task()
        assert task is not None  # a handler runs in a task
        self._open[response] = (transport, task)
        try:
            yield
        finally:
            del self._open[response]

    async def beat(self) -> None:
        """Write a comment to every open stream, every interval, until cancelled.

        Only to streams with nothing waiting to be sent: those are not idle, and a
        write to a client that does not read could wait for as long as it does not
        (an empty buffer never makes a write wait). A stream whose connection has
        closed has its handler cancelled: without aiohttp's ``handler_cancellation``
        (gunicorn's worker) nothing else would end it before the workflow changes.
        """
        while True:
            await asyncio.sleep(self._interval)
            for count, (response, (transport, task)) in enumerate(list(self._open.items()), 1):
                if count % _BEATS_A_TURN == 0:
                    await asyncio.sleep(0)  # events waiting to go out go first
                if transport.is_closing():
                    task.cancel()
                    continue
                if transport.get_write_buffer_size():
                    continue
                # A stream whose client has gone ends in its own handler, cancelled.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await response.write(HEARTBEAT)
