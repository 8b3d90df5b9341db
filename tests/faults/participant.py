"""A participant on 127.0.0.1 that misbehaves on request, at the level of bytes.

It plays payment, inventory and shipping on one port, speaking HTTP/1.1 by hand
over asyncio streams, so that it can do what no well-behaved server library
would: stall, drip, reset, send garbage. A participant in ``faulty`` takes its
behaviour from the workflow id, ``<mode>.<anything>`` (``garbage.17``); the
others use their entry in ``modes`` (``normal`` unless set). Every request is
recorded with its raw target and headers.

A normal answer's ``version`` says which tenant it was fetched for (the
``X-Tenant-ID`` it received: 1 + its index in ``TENANTS``, 1 without one).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import unquote

import pytest

PATHS = {"payment": "payments", "inventory": "reservations", "shipping": "shipments"}
STATES = {"payment": "captured", "inventory": "reserved", "shipping": "in_transit"}
TENANTS = ("acme", "globex", "initech")

# Modes whose answer cannot be read as a part: the part is invalid or unavailable.
BROKEN = (
    "stall-accept",
    "stall-headers",
    "drip",
    "reset-headers",
    "reset-body",
    "garbage",
    "invalid-json",
    "wrong-schema",
    "html",
    "huge",
    "huge-declared",
    "gzip-bomb",
    "many-headers",
    "huge-header",
    "redirect",
)
# Modes that answer a good part, with something the gateway must not pass on or keep.
ODD = ("set-cookie", "no-store")
MODES = ("normal", *BROKEN, *ODD)
HUGE = 50 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    participant: str | None
    method: str
    target: str  # as sent, still percent-encoded
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass(repr=False)
class FaultyParticipant:
    port: int = 0
    faulty: set[str] = field(default_factory=lambda: {"shipping"})
    modes: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    open: dict[asyncio.StreamWriter, set[str]] = field(default_factory=dict)  # who each served

    def __repr__(self) -> str:
        return f"FaultyParticipant(port={self.port}, received={len(self.received)})"

    def url(self, participant: str) -> str:
        return f"http://127.0.0.1:{self.port}/{PATHS[participant]}/{{workflow_id}}"

    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in PATHS}

    def to(self, participant: str) -> list[Received]:
        return [r for r in self.received if r.participant == participant]

    def open_to(self, participant: str) -> int:
        """Connections still open that have carried a request to ``participant``."""
        return sum(1 for served in self.open.values() if participant in served)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open[writer] = set()
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            del self.open[writer]
            writer.close()

    def close_all(self) -> None:
        for writer in list(self.open):
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether the connection may carry another."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = tuple(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        )
        path = target.split("?", 1)[0]
        participant = next((n for n, p in PATHS.items() if path.startswith(f"/{p}/")), None)
        request = Received(participant, method, target, headers)
        self.received.append(request)
        self.open[writer].add(participant or "")
        if participant is None:
            await _send(writer, 404, b'{"title": "no such path"}')
            return True
        workflow_id = unquote(path.rsplit("/", 1)[1])
        mode = self.modes.get(participant, "normal")
        if participant in self.faulty:
            mode = workflow_id.split(".", 1)[0]
        self.in_flight[participant] += 1
        self.peak[participant] = max(self.peak[participant], self.in_flight[participant])
        try:
            return await _misbehave(mode, participant, workflow_id, request, reader, writer)
        finally:
            self.in_flight[participant] -= 1


def good_body(participant: str, workflow_id: str, tenant: str | None) -> bytes:
    version = 1 + TENANTS.index(tenant) if tenant in TENANTS else 1
    domains: dict[str, dict[str, object]] = {
        "payment": {"amount": 1999, "currency": "EUR"},
        "inventory": {"items": [{"sku": "book-1", "quantity": 1}]},
        "shipping": {"carrier": "parcelco", "tracking_number": "PC123"},
    }
    domain = domains[participant]
    return json.dumps(
        {
            "workflow_id": workflow_id,
            "state": STATES[participant],
            "version": version,
            "updated_at": "2026-01-01T10:00:00Z",
            **domain,
        }
    ).encode()


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
    head += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in extra)]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _until_closed(reader: asyncio.StreamReader) -> bool:
    """Hold the connection, answering nothing, until the gateway gives up on it."""
    while await reader.read(65536):
        pass
    return False


def _reset(writer: asyncio.StreamWriter) -> bool:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    return False


@cache
def gzip_bomb() -> bytes:
    """About 130 KB that inflate to 128 MiB."""
    return gzip.compress(bytes(128 * 1024 * 1024), compresslevel=9)


async def _misbehave(
    mode: str,
    participant: str,
    workflow_id: str,
    request: Received,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> bool:
    body = good_body(participant, workflow_id, request.header("X-Tenant-ID"))
    if mode == "stall-accept":
        return await _until_closed(reader)
    if mode == "stall-headers":
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        return await _until_closed(reader)
    if mode == "drip":
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
        return False
    if mode == "reset-headers":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: appl")
        await writer.drain()
        return _reset(writer)
    if mode == "reset-body":
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        await writer.drain()
        return _reset(writer)
    if mode == "garbage":
        writer.write(random.Random(workflow_id).randbytes(4096))
        await writer.drain()
        return False
    if mode == "invalid-json":
        await _send(writer, 200, b'{"workflow_id": "' + workflow_id.encode() + b'", "state":')
        return True
    if mode == "wrong-schema":
        await _send(writer, 200, json.dumps({"workflow_id": workflow_id, "state": 42}).encode())
        return True
    if mode == "html":
        page = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
        await _send(writer, 200, page, content_type="text/html")
        return True
    if mode in ("huge", "huge-declared"):
        length = f"Content-Length: {HUGE}\r\n" if mode == "huge-declared" else ""
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}"
            "Connection: close\r\n\r\n".encode()
        )
        chunk = b"[" + b"0," * 32767 + b"0"
        for _ in range(HUGE // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        return False
    if mode == "gzip-bomb":
        await _send(writer, 200, gzip_bomb(), extra=(("Content-Encoding", "gzip"),))
        return True
    if mode == "many-headers":
        filler = tuple((f"X-Filler-{n}", "x") for n in range(10_000))
        await _send(writer, 200, body, extra=filler)
        return True
    if mode == "huge-header":
        await _send(writer, 200, body, extra=(("X-Huge", "x" * 1_048_576),))
        return True
    if mode == "redirect":
        target = f"http://169.254.169.254/{PATHS[participant]}/{workflow_id}"
        await _send(writer, 302, b"", extra=(("Location", target),))
        return True
    if mode == "set-cookie":
        cookie = (("Set-Cookie", "session=participant-secret; Path=/"),)
        await _send(writer, 200, body, extra=cookie)
        return True
    if mode == "no-store":
        await _send(writer, 200, body, extra=(("Cache-Control", "private, no-store"),))
        return True
    await _send(writer, 200, body)
    return True


class _Thread(threading.Thread):
    """The participant's own event loop, so that its work (streaming 50 MB, say)
    never holds up the gateway's loop in the test's thread."""

    def __init__(self, participant: FaultyParticipant) -> None:
        super().__init__(name="faulty-participant", daemon=True)
        self.participant = participant
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        server = await asyncio.start_server(self.participant.serve, "127.0.0.1", 0, limit=1 << 20)
        self.participant.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        await self.stopping.wait()
        server.close()
        self.participant.close_all()
        await server.wait_closed()
        for _ in range(100):  # let each connection's handler see its end
            if not self.participant.open:
                break
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        assert self.loop is not None and self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.join(10)


@pytest.fixture
def faulty() -> Iterator[FaultyParticipant]:
    gzip_bomb()  # built before any gateway runs: it takes a moment
    participant = FaultyParticipant()
    thread = _Thread(participant)
    thread.start()
    thread.ready.wait(10)
    try:
        yield participant
    finally:
        thread.stop()
