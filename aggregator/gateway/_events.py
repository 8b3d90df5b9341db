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

from aiohttp import web

from aggregator import Change

from ._render import etag_of

CONTENT_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
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
        # Every event is news: no cache may keep or replay the stream.
        "Cache-Control": "no-store",
        # nginx buffers responses unless told not to; an event must not wait for more.
        "X-Accel-Buffering": "no",
        request_id_header: request_id,
    }


class Streams:
    """The event streams open now, and their heartbeat."""

    __slots__ = ("_interval", "_open")

    def __init__(self, heartbeat: float) -> None:
        self._interval = heartbeat
        self._open: dict[web.StreamResponse, asyncio.Transport] = {}

    def __len__(self) -> int:
        return len(self._open)

    @contextlib.contextmanager
    def opened(self, response: web.StreamResponse, transport: asyncio.Transport) -> Iterator[None]:
        self._open[response] = transport
        try:
            yield
        finally:
            del self._open[response]

    async def beat(self) -> None:
        """Write a comment to every open stream, every interval, until cancelled.

        Only to streams with nothing waiting to be sent: those are not idle, and a
        write to a client that does not read could wait for as long as it does not
        (an empty buffer never makes a write wait).
        """
        while True:
            await asyncio.sleep(self._interval)
            for count, (response, transport) in enumerate(list(self._open.items()), 1):
                if count % _BEATS_A_TURN == 0:
                    await asyncio.sleep(0)  # events waiting to go out go first
                if transport.is_closing() or transport.get_write_buffer_size():
                    continue
                # A stream whose client has gone ends in its own handler, cancelled.
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await response.write(HEARTBEAT)
