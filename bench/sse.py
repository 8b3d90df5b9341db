"""Server-sent events: aiohttp-sse or our own framing, measured side by side.

    .venv/bin/pip install -e '.[bench]'   # aiohttp-sse; make bench does it
    python bench/sse.py [--streams 2000] [--events 20] [--rounds 8] [--out bench/RESULTS.md]

Two server processes on uvloop hold ``--streams`` event streams each, opened by
this process (aiohttp's client). Both tell their streams of the same changes, a
real status of about 1.4 KB made by the aggregator in-process (three
participants, a new version each time), the way the gateway does: every
stream's handler waits for the next change and writes it.

- ``ours``: the gateway's framing (``aggregator.gateway._events``): a
  ``web.StreamResponse`` each, ``frame(change)`` made once per change and the same
  bytes written to every stream (``send``: a write behind unsent bytes timed out); one
  heartbeat task for all streams (``Streams``).
- ``aiohttp-sse``: ``sse_response`` each, ``EventSourceResponse.send(data,
  id=..., event="status")`` per stream (the JSON decoded to text once per change,
  not per stream; each write bounded by its own timeout too); its ping task per
  stream, at the same 15 s.

A round tells ``--events`` changes to every stream of one server, one after the
other (each written to every stream before the next), and takes the server's
CPU time (``time.process_time()`` in the server) from before the first until
this process has read every event. The servers take turns, the first of each
round alternating; the ratio is ours / aiohttp-sse per round, the median
reported. Memory: each server's VmRSS with every stream open minus before any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiohttp import web
from aiohttp_sse import sse_response
from run import HERE, PATHS, PY, free_port, processes, say, write_section  # bench/run.py
from watch import rss_kib, stamp  # bench/watch.py

from aggregator import Change, OutboundRequest, Settings, StatusAggregator, TransportResponse
from aggregator.gateway._collector import tune_collector
from aggregator.gateway._events import Streams, frame, send, stream_headers
from aggregator.gateway._render import etag_of
from aggregator.testing import ManualClock

HEADING = "## Server-sent events: aiohttp-sse or our own framing"
KINDS = ("ours", "aiohttp-sse")
HEARTBEAT = 15.0  # seconds: the gateway's default heartbeat, and aiohttp-sse's ping
BODIES: dict[str, dict[str, object]] = {
    "payment": {"state": "captured", "amount": 1999, "currency": "EUR"},
    "inventory": {"state": "reserved", "items": [{"sku": "book-1", "quantity": 1}]},
    "shipping": {"state": "in_transit", "carrier": "parcelco", "tracking_number": "PC123"},
}


# --- the servers ----------------------------------------------------------------------


async def make_changes(count: int) -> list[Change]:
    """``count`` answers for one workflow, each with new versions of its parts."""
    settings = Settings(
        participants={name: {"url": f"http://{name}.test{path}"} for name, path in PATHS.items()}
    )
    clock = ManualClock()
    version = 0

    async def transport(request: OutboundRequest) -> TransportResponse:
        name = next(n for n in PATHS if f"//{n}.test/" in request.url)
        body = {
            "workflow_id": "order-42",
            "version": version,
            "updated_at": "2026-01-01T00:00:00Z",
            **BODIES[name],
        }
        return TransportResponse(
            200, {"content-type": "application/json"}, json.dumps(body).encode()
        )

    changes = []
    async with StatusAggregator(settings, transport=transport, clock=clock) as aggregator:
        for n in range(count):
            version = n + 1
            clock.advance(60)  # every part past its time to live: asked again
            changes.append(Change(await aggregator.answer("order-42"), final=False))
    return changes


@dataclass(frozen=True, slots=True)
class Told:
    """One change, with what aiohttp-sse's ``send`` takes made once."""

    change: Change
    text: str
    id: str


class Broadcast:
    """The latest change, told to every stream's handler; ``publish`` returns once
    every stream has written it."""

    def __init__(self) -> None:
        self.told: Told | None = None
        self.number = 0
        self.streams = 0
        self._changed = asyncio.Event()
        self._left = 0
        self._all_written: asyncio.Future[None] | None = None

    async def next(self, seen: int) -> tuple[Told, int]:
        while self.number == seen:
            await self._changed.wait()
        assert self.told is not None
        return self.told, self.number

    async def publish(self, told: Told) -> None:
        self.told, self.number, self._left = told, self.number + 1, self.streams
        self._all_written = asyncio.get_running_loop().create_future()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        await self._all_written

    def written(self) -> None:
        self._left -= 1
        if self._left == 0 and self._all_written is not None:
            self._all_written.set_result(None)

    @asynccontextmanager
    async def stream(self) -> AsyncIterator[int]:
        self.streams += 1
        try:
            yield self.number
        finally:
            self.streams -= 1


def server_app(kind: str, changes: list[Change]) -> web.Application:
    broadcast = Broadcast()
    streams = Streams(HEARTBEAT)
    upcoming = iter(changes)

    async def ours(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=stream_headers("X-Request-ID", "bench"))
        async with broadcast.stream() as seen:  # counted before its client has the headers
            await response.prepare(request)
            transport = request.transport
            assert transport is not None
            with streams.opened(response, transport):
                await send(response, transport, b"retry: 2000\n\n")
                while True:
                    told, seen = await broadcast.next(seen)
                    await send(response, transport, frame(told.change))
                    broadcast.written()

    async def theirs(request: web.Request) -> web.StreamResponse:
        async with (
            broadcast.stream() as seen,
            sse_response(
                request, headers={"Cache-Control": "no-store"}, ping_interval=HEARTBEAT
            ) as sse,
        ):
            response: web.StreamResponse = sse
            while True:
                told, seen = await broadcast.next(seen)
                await sse.send(told.text, id=told.id, event="status")
                broadcast.written()
        return response

    async def cpu(_: web.Request) -> web.Response:
        return web.json_response({"cpu": time.process_time(), "streams": broadcast.streams})

    async def round_(request: web.Request) -> web.Response:
        for _ in range(int(request.query["events"])):
            change = next(upcoming)
            text = change.answer.json().decode()
            await broadcast.publish(Told(change, text, etag_of(change.answer.rendering)))
        return web.json_response({"streams": broadcast.streams})

    async def heartbeat(_: web.Application) -> AsyncIterator[None]:
        beating = asyncio.create_task(streams.beat())
        yield
        beating.cancel()

    app = web.Application()
    app.cleanup_ctx.append(heartbeat)
    app.router.add_get("/events", ours if kind == "ours" else theirs)
    app.router.add_get("/_cpu", cpu)
    app.router.add_post("/_round", round_)
    return app


def serve(args: argparse.Namespace) -> int:
    loop = uvloop.new_event_loop()
    changes = loop.run_until_complete(make_changes(args.changes))
    tune_collector(50_000)  # as the gateway's processes do by default
    web.run_app(
        server_app(args.kind, changes),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handler_cancellation=True,  # a stream whose client has gone ends, as in the gateway
        shutdown_timeout=1,
        loop=loop,
    )
    return 0


# --- the measurement -----------------------------------------------------------------


class Reader:
    """Every stream of one server, read line by line; counts the events arrived."""

    def __init__(self) -> None:
        self.events = 0
        self.bytes_per_event = 0
        self._wanted = 0
        self._reached = asyncio.Event()

    async def read(self, response: aiohttp.ClientResponse) -> None:
        size, data = 0, False
        async for line in response.content:
            size += len(line)
            data = data or line.startswith(b"data:")
            if line.strip() == b"":
                if data:  # an event's blank line, not the one after retry or a heartbeat
                    self.bytes_per_event = size
                    self.events += 1
                    if self.events >= self._wanted:
                        self._reached.set()
                size, data = 0, False

    async def until(self, events: int) -> None:
        self._wanted = events
        if self.events < events:
            self._reached = asyncio.Event()
            await self._reached.wait()


@dataclass
class Comparison:
    streams: int
    events: int
    rounds: int
    cpu_per_event: dict[str, list[float]]  # seconds of server CPU per event and stream, per round
    kib_per_stream: dict[str, float]
    bytes_per_event: dict[str, int]
    version: str
    elapsed: float

    def ratios(self) -> list[float]:
        return [
            ours / theirs
            for ours, theirs in zip(
                self.cpu_per_event["ours"], self.cpu_per_event["aiohttp-sse"], strict=True
            )
        ]

    def us(self, kind: str) -> float:
        return statistics.median(self.cpu_per_event[kind]) * 1e6

    def row(self) -> tuple[str, str, str, str, bool]:
        ratio = statistics.median(self.ratios())
        return (
            f"server-sent events ({self.streams:,} streams, a 1.4 KB status)",
            "server CPU per event delivered: ours / aiohttp-sse",
            "<= 1 keeps our framing",
            f"{ratio:.2f} ({self.us('ours'):.1f} / {self.us('aiohttp-sse'):.1f} us)",
            ratio <= 1,
        )

    def section(self) -> list[str]:
        ratios = self.ratios()
        ratio = statistics.median(ratios)
        kib = self.kib_per_stream
        verdict = (
            "Our framing stays: it costs less CPU per event delivered"
            if ratio < 1
            else "aiohttp-sse costs no more CPU per event delivered than our framing"
        )
        return [
            HEADING,
            "",
            f"`make bench` or `python bench/sse.py`, {stamp()}, {self.elapsed:.0f} s;"
            f" aiohttp-sse {self.version}. {self.streams:,} streams on each of two server"
            f" processes, {self.rounds} rounds of {self.events} changes to every"
            " stream, the servers in turn (see the docstring of bench/sse.py for how).",
            "",
            "| | ours (pre-framed bytes) | aiohttp-sse (`send` per stream) |",
            "|---|---|---|",
            f"| server CPU per event and stream, median of the rounds | {self.us('ours'):.1f} us"
            f" | {self.us('aiohttp-sse'):.1f} us |",
            f"| resident memory per open stream | {kib['ours']:.1f} KiB |"
            f" {kib['aiohttp-sse']:.1f} KiB |",
            f"| bytes of an event | {self.bytes_per_event['ours']:,} |"
            f" {self.bytes_per_event['aiohttp-sse']:,} |",
            "",
            f"Ours / aiohttp-sse, CPU per event: median {ratio:.2f} over {len(ratios)} rounds"
            f" (from {min(ratios):.2f} to {max(ratios):.2f}). {verdict}. aiohttp-sse frames"
            " each event again for each stream (a regular expression over the data, a"
            " StringIO, an encode), bounds each write with its own timeout, and keeps a"
            " ping task per stream; ours times only a write behind unsent bytes.",
        ]


async def measure(
    args: argparse.Namespace, ports: dict[str, int], pids: dict[str, int]
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, int]]:
    readers = {kind: Reader() for kind in KINDS}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def get(kind: str, path: str) -> Any:
            async with client.get(f"http://127.0.0.1:{ports[kind]}{path}") as response:
                return await response.json()

        before = {kind: rss_kib(pid) for kind, pid in pids.items()}
        opening = asyncio.Semaphore(64)
        responses: list[aiohttp.ClientResponse] = []

        async def open_stream(kind: str) -> None:
            async with opening:
                response = await client.get(f"http://127.0.0.1:{ports[kind]}/events")
                response.raise_for_status()
                responses.append(response)

        await asyncio.gather(*(open_stream(kind) for kind in KINDS for _ in range(args.streams)))
        for kind in KINDS:  # a handler counts itself in before it sends the headers
            counted = (await get(kind, "/_cpu"))["streams"]
            if counted != args.streams:
                raise RuntimeError(f"{kind}: {counted} streams open, not {args.streams}")
        kib = {kind: (rss_kib(pids[kind]) - before[kind]) / args.streams for kind in KINDS}
        reading = [
            asyncio.create_task(readers[kind].read(r))
            for kind in KINDS
            for r in responses
            if r.url.port == ports[kind]
        ]
        cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
        delivered = dict.fromkeys(KINDS, 0)
        for n in range(args.rounds + 1):  # the first is a warm-up
            for kind in KINDS if n % 2 == 0 else KINDS[::-1]:
                start = (await get(kind, "/_cpu"))["cpu"]
                async with client.post(
                    f"http://127.0.0.1:{ports[kind]}/_round", params={"events": args.events}
                ) as response:
                    response.raise_for_status()
                delivered[kind] += args.events * args.streams
                await readers[kind].until(delivered[kind])
                end = (await get(kind, "/_cpu"))["cpu"]
                if n:
                    cpu[kind].append((end - start) / (args.events * args.streams))
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        for response in responses:
            response.close()
    return cpu, kib, {kind: reader.bytes_per_event for kind, reader in readers.items()}


def run(args: argparse.Namespace) -> Comparison:
    from importlib.metadata import version

    started = time.monotonic()
    with processes() as running:
        ports = {kind: free_port() for kind in KINDS}
        for kind, port in ports.items():
            command = [PY, str(Path(__file__)), "serve", "--kind", kind, "--port", str(port)]
            command += ["--changes", str(args.events * (args.rounds + 1))]
            running.start(kind, command, port)
        pids = {kind: running.running[kind].pid for kind in KINDS}
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            cpu, kib, sizes = runner.run(measure(args, ports, pids))
    return Comparison(
        streams=args.streams,
        events=args.events,
        rounds=args.rounds,
        cpu_per_event=cpu,
        kib_per_stream=kib,
        bytes_per_event=sizes,
        version=version("aiohttp-sse"),
        elapsed=time.monotonic() - started,
    )


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="bench/sse.py", description=__doc__.split("\n")[0])
    found.add_argument("--streams", type=int, default=2000, help="on each server")
    found.add_argument("--events", type=int, default=20, help="changes a round")
    found.add_argument("--rounds", type=int, default=8, help="rounds of each server")
    found.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    roles = found.add_subparsers(dest="role")
    role = roles.add_parser("serve", help="(internal) one server")
    role.add_argument("--kind", choices=KINDS, required=True)
    role.add_argument("--port", type=int, required=True)
    role.add_argument("--changes", type=int, required=True, help="changes it can tell")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.role == "serve":
        return serve(args)
    say(f"sse: ours against aiohttp-sse, {args.streams:,} streams each, {args.rounds} rounds")
    comparison = run(args)
    print(" | ".join(str(cell) for cell in comparison.row()))
    write_section(args.out, comparison.section())
    say(f"sse: done in {comparison.elapsed:.0f} s; section written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
