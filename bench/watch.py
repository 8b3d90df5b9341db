"""make bench's watch scenario: many event streams over a few workflows whose
participants change now and then.

    python bench/watch.py [--watchers 10000] [--workflows 100] [--seconds 40]
        [--rate 5] [--ttl-ms 2000] [--clients 2] [--out bench/RESULTS.md]

Three kinds of process, all on 127.0.0.1:

- this one plays the three participants: one aiohttp server answering every
  workflow from an in-memory table, counting the queries per participant and
  workflow and noting when each new version of a record was first served. It
  also makes the changes: ``--rate`` a second, each to a random workflow not
  changed in the last three time to lives (so no change hides an earlier one), a
  random participant's record getting a new version (shipping's also a new
  state: scheduled and in transit in turn);
- the gateway, ``python -m aggregator serve``, with the time to live given and the
  watch limits raised to the scenario's size;
- ``--clients`` processes (this file's ``watchers`` role) holding the streams on
  aiohttp's client, each noting when every event arrived (``time.monotonic()``:
  on Linux CLOCK_MONOTONIC is one clock for every process).

An event's data holds every part's version; the highest is the workflow's change
number, so each arrival is matched to its change. Measured:

- upstream calls per participant per workflow per time to live over the period
  of changes (the target, as for a hot key, is 1: one poller per workflow);
- delivery latency, arrival minus change, over every watcher and change; split
  into the wait for the poller's next call (up to one time to live: the poller
  asks when the first shown part leaves the cache) and what follows that call
  (the gateway's work and the client's read);
- resident memory per watcher: the gateway's VmRSS with every stream open minus
  before (after a warm-up), divided by the streams; beside it the same for
  plain idle keep-alive connections to a fresh gateway (``GET /healthz``, then
  nothing), what aiohttp costs per connection anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiohttp import web
from run import (  # bench/run.py, beside this file
    HERE,
    PATHS,
    PY,
    free_port,
    gateway_config,
    processes,
    say,
    write_section,
)

HEADING = "## Watching: event streams over a hundred workflows"
PARTICIPANTS = tuple(PATHS)
STATES = {"payment": "captured", "inventory": "reserved", "shipping": "scheduled"}
DOMAIN: dict[str, dict[str, object]] = {
    "payment": {"amount": 1999, "currency": "EUR"},
    "inventory": {"items": [{"sku": "book-1", "quantity": 1}]},
    "shipping": {"carrier": "parcelco", "tracking_number": "PC123"},
}
NEXT_SHIPPING = {"scheduled": "in_transit", "in_transit": "scheduled"}
VERSION = re.compile(rb'"version":(\d+)')
CONNECTING = 64  # streams of one client process being opened at once (the listen backlog is 128)
CALLS_TARGET = (0.9, 1.05)  # upstream calls per participant per workflow per time to live


def workflow_id(index: int) -> str:
    return f"watch-{index}"


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raise_fd_limit() -> None:
    """Every stream is a file descriptor: the soft limit up to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the participants, played by this process ---------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    state: str
    version: int
    updated_at: str


class Participants:
    """The three participants' records of every workflow; counts what they are asked."""

    def __init__(self, workflows: int) -> None:
        now = iso_now()
        self.index = {workflow_id(n): n for n in range(workflows)}
        self.records = {
            name: [Record(STATES[name], 1, now) for _ in range(workflows)] for name in PATHS
        }
        self.changes = [1] * workflows  # each workflow's change number: its highest version
        self.queries = {name: [0] * workflows for name in PATHS}
        self._unseen: dict[tuple[str, int], int] = {}  # a changed record not yet served
        self.first_served: dict[tuple[int, int], float] = {}  # (workflow, change) -> when

    def app(self) -> web.Application:
        app = web.Application()
        for name, path in PATHS.items():
            app.router.add_get(path, self._handler(name))
        return app

    def _handler(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        records, queries, domain = self.records[name], self.queries[name], DOMAIN[name]

        async def query(request: web.Request) -> web.Response:
            workflow = request.match_info["workflow_id"]
            n = self.index.get(workflow)
            if n is None:
                return web.json_response({"title": "no record"}, status=404)
            queries[n] += 1
            record = records[n]
            if self._unseen.get((name, n)) == record.version:
                del self._unseen[name, n]
                self.first_served[n, record.version] = time.monotonic()
            body = {
                "workflow_id": workflow,
                "state": record.state,
                "version": record.version,
                "updated_at": record.updated_at,
                **domain,
            }
            return web.Response(body=json.dumps(body).encode(), content_type="application/json")

        return query

    def change(self, n: int, name: str) -> int:
        """A new version of one participant's record of workflow ``n``; its change number."""
        self.changes[n] += 1
        version = self.changes[n]
        record = self.records[name][n]
        state = NEXT_SHIPPING[record.state] if name == "shipping" else record.state
        self.records[name][n] = Record(state, version, iso_now())
        self._unseen[name, n] = version
        return version

    def queries_now(self) -> dict[str, list[int]]:
        return {name: list(counts) for name, counts in self.queries.items()}


# --- the watchers, in client processes --------------------------------------------


class Holder:
    """One client process's streams and what arrived on them."""

    def __init__(self, base: str, streams: list[tuple[int, int]]) -> None:
        self.base = base
        self.streams = streams  # (stream number, workflow)
        self.deliveries: list[tuple[int, int, int, float]] = []  # stream, workflow, change, at
        self.latest: dict[int, int] = {}
        self.opened = 0
        self.failed: list[str] = []
        self.ended = 0
        self.heartbeats = 0
        self.all_open = asyncio.Event()
        self.targets: dict[int, int] = {}
        self.behind = 0
        self.caught_up = asyncio.Event()

    def _settled(self) -> None:
        if self.opened + len(self.failed) == len(self.streams):
            self.all_open.set()

    def _arrived(self, stream: int, workflow: int, change: int) -> None:
        previous = self.latest.get(stream, 0)
        self.latest[stream] = change
        target = self.targets.get(workflow)
        if target is not None and previous < target <= change:
            self.behind -= 1
            if self.behind == 0:
                self.caught_up.set()

    def until(self, targets: dict[int, int]) -> None:
        """Set ``caught_up`` once every stream has seen its workflow's change number."""
        self.targets = targets
        self.behind = sum(1 for s, w in self.streams if self.latest.get(s, 0) < targets.get(w, 0))
        if self.behind == 0:
            self.caught_up.set()

    async def watch(
        self, client: aiohttp.ClientSession, opening: asyncio.Semaphore, stream: int, workflow: int
    ) -> None:
        url = f"{self.base}/workflows/{workflow_id(workflow)}/events"
        try:
            async with opening:
                response = await client.get(url)
                try:
                    self.latest[stream] = await first_change(response)
                except BaseException:
                    response.release()
                    raise
        except Exception as exc:
            self.failed.append(f"{type(exc).__name__}: {exc}")
            self._settled()
            return
        self.opened += 1
        self._settled()
        async with response:
            async for line in response.content:
                if line.startswith(b"data:"):
                    change = max(map(int, VERSION.findall(line)))
                    self.deliveries.append((stream, workflow, change, time.monotonic()))
                    self._arrived(stream, workflow, change)
                elif line.startswith(b":"):
                    self.heartbeats += 1
        self.ended += 1

    async def idle(
        self, host: str, port: int, opening: asyncio.Semaphore
    ) -> asyncio.StreamWriter | None:
        """A plain keep-alive connection: one small request, then nothing."""
        try:
            async with opening:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
        except Exception as exc:
            self.failed.append(f"{type(exc).__name__}: {exc}")
            self._settled()
            return None
        self.opened += 1
        self._settled()
        return writer


async def first_change(response: aiohttp.ClientResponse) -> int:
    """The change number of a stream's first event."""
    if response.status != 200:
        raise RuntimeError(f"{response.url}: HTTP {response.status}")
    async for line in response.content:
        if line.startswith(b"data:"):
            return max(map(int, VERSION.findall(line)))
    raise RuntimeError(f"{response.url}: ended before its first event")


def say_line(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def hold(args: argparse.Namespace) -> int:
    """The ``watchers`` role: open this process's share of the streams, say when all
    have their first event, then report arrivals once told the change numbers to
    wait for (or after a timeout); ends when its standard input does."""
    raise_fd_limit()
    mine = [(s, s % args.workflows) for s in range(args.watchers) if s % args.clients == args.index]
    holder = Holder(args.url, mine)
    opening = asyncio.Semaphore(CONNECTING)
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        if args.idle:
            host, port = args.url.removeprefix("http://").rsplit(":", 1)
            idle = [holder.idle(host, int(port), opening) for _ in mine]
            writers = [w for w in await asyncio.gather(*idle) if w is not None]
            tasks: list[asyncio.Task[None]] = []
        else:
            tasks = [asyncio.create_task(holder.watch(client, opening, s, w)) for s, w in mine]
            await holder.all_open.wait()
            writers = []
        say_line(
            {
                "opened": holder.opened,
                "failed": holder.failed[:5],
                "failures": len(holder.failed),
                "seconds": time.monotonic() - started,
            }
        )
        while line := await asyncio.to_thread(sys.stdin.readline):
            order = json.loads(line)
            holder.until({int(w): c for w, c in order["until"].items()})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(holder.caught_up.wait(), order["timeout"])
            say_line(
                {
                    "deliveries": holder.deliveries,
                    "behind": holder.behind,
                    "ended": holder.ended,
                    "heartbeats": holder.heartbeats,
                }
            )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.close()
    return 0


class Clients:
    """The client processes, driven over their standard input and output."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes

    @classmethod
    async def start(cls, url: str, args: argparse.Namespace, *, idle: bool) -> Clients:
        started = []
        for index in range(args.clients):
            command = [
                PY,
                str(Path(__file__)),
                "watchers",
                "--url",
                url,
                "--watchers",
                str(args.watchers),
                "--workflows",
                str(args.workflows),
                "--clients",
                str(args.clients),
                "--index",
                str(index),
                *(["--idle"] if idle else []),
            ]
            started.append(
                await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=2**28,  # a report line holds every arrival
                )
            )
        return cls(started)

    async def read(self) -> list[dict[str, Any]]:
        """The next line of each, in order."""

        async def one(process: asyncio.subprocess.Process) -> dict[str, Any]:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError(f"watcher process {process.pid} ended early")
            found: dict[str, Any] = json.loads(line)
            return found

        return list(await asyncio.gather(*map(one, self.processes)))

    async def tell(self, order: dict[str, Any]) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(json.dumps(order).encode() + b"\n")
            await process.stdin.drain()

    async def close(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.send_signal(signal.SIGKILL)
                await process.wait()


# --- the figures --------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Deliveries:
    latencies: list[float]  # arrival - change, one per watcher and change
    after_fetch: list[float]  # arrival - the changed record first served to the gateway
    waits: list[float]  # first served - change, one per change
    delivered: int
    expected: int
    other: int  # events that are no change's first arrival on their stream


def match(
    changed: dict[tuple[int, int], float],
    first_served: dict[tuple[int, int], float],
    arrivals: Iterable[Sequence[Any]],
    watchers_of: dict[int, int],
) -> Deliveries:
    """Each arrival (stream, workflow, change number, time) matched to its change
    (``changed``: (workflow, change number) -> when it was made)."""
    seen: set[tuple[int, int]] = set()
    latencies, after_fetch = [], []
    other = 0
    for stream, workflow, number, at in arrivals:
        made = changed.get((workflow, number))
        if made is None or (stream, number) in seen:
            other += 1
            continue
        seen.add((stream, number))
        latencies.append(at - made)
        served = first_served.get((workflow, number))
        if served is not None:
            after_fetch.append(at - served)
    waits = [first_served[k] - t for k, t in changed.items() if k in first_served]
    expected = sum(watchers_of.get(workflow, 0) for workflow, _ in changed)
    return Deliveries(latencies, after_fetch, waits, len(latencies), expected, other)


def calls_per_ttl(
    before: dict[str, list[int]], after: dict[str, list[int]], seconds: float, ttl: float
) -> dict[str, list[float]]:
    """Per participant, each workflow's upstream calls per time to live in the period."""
    return {
        name: [(a - b) / (seconds / ttl) for a, b in zip(after[name], before[name], strict=True)]
        for name in after
    }


@dataclass
class Figures:
    watchers: int
    workflows: int
    clients: int
    ttl_ms: int
    seconds: float
    rate: float
    changes: int
    open_seconds: float
    failures: int
    calls: dict[str, list[float]]
    deliveries: Deliveries
    rss_before_kib: int
    rss_open_kib: int
    rss_end_kib: int
    idle_before_kib: int
    idle_open_kib: int
    idle_failures: int
    gateway_cpu: float  # seconds of CPU over the period of changes
    heartbeats: int
    ended: int
    elapsed: float
    notes: list[str] = field(default_factory=list)

    @property
    def kib_per_watcher(self) -> float:
        return (self.rss_open_kib - self.rss_before_kib) / self.watchers

    @property
    def kib_per_idle(self) -> float:
        return (self.idle_open_kib - self.idle_before_kib) / self.watchers

    def watcher_to_idle(self) -> str:
        """A watcher's memory as a multiple of a bare connection's."""
        if self.kib_per_idle <= 0:  # too few connections to move the resident size
            return "n/a"
        return f"{self.kib_per_watcher / self.kib_per_idle:.1f}x"

    @property
    def calls_mean(self) -> float:
        every = [c for counts in self.calls.values() for c in counts]
        return sum(every) / len(every)

    def calls_met(self) -> bool:
        every = [c for counts in self.calls.values() for c in counts]
        low, high = CALLS_TARGET
        return low <= min(every) and max(every) <= high

    def latency_met(self) -> bool:
        ttl = self.ttl_ms / 1000
        d = self.deliveries
        return (
            d.delivered == d.expected
            and percentile(d.latencies, 0.99) <= ttl + 0.25
            and self.failures == 0
        )

    def rows(self) -> list[tuple[str, str, str, str, bool]]:
        d = self.deliveries
        every = [c for counts in self.calls.values() for c in counts]
        scenario = (
            f"watch ({self.watchers:,} streams, {self.workflows} workflows, "
            f"time to live {self.ttl_ms} ms)"
        )
        per_part = ", ".join(
            f"{name} {sum(counts) / len(counts):.3f}" for name, counts in self.calls.items()
        )
        return [
            (
                scenario,
                "upstream calls per participant per workflow per time to live",
                "1 (as a hot key)",
                f"{self.calls_mean:.3f} (each {min(every):.2f}-{max(every):.2f}; {per_part})",
                self.calls_met(),
            ),
            (
                scenario,
                "delivery latency after a change, p50 / p99",
                f"p99 <= time to live + 250 ms; all {d.expected:,} delivered",
                f"{ms(percentile(d.latencies, 0.5))} / {ms(percentile(d.latencies, 0.99))}; "
                f"after the poller's call {ms(percentile(d.after_fetch, 0.5))} / "
                f"{ms(percentile(d.after_fetch, 0.99))}; {d.delivered:,} delivered",
                self.latency_met(),
            ),
            (
                scenario,
                "resident memory per watcher (gateway)",
                "reported",
                f"{self.kib_per_watcher:.1f} KiB; an idle keep-alive connection "
                f"{self.kib_per_idle:.1f} KiB "
                f"({self.watcher_to_idle()})",
                True,
            ),
        ]

    def section(self) -> list[str]:
        d = self.deliveries
        ttl = self.ttl_ms / 1000
        every = [c for counts in self.calls.values() for c in counts]
        lines = [
            HEADING,
            "",
            f"`make bench` or `python bench/watch.py`, {stamp()}, {self.elapsed:.0f} s"
            f" in all. {self.watchers:,} event streams (`GET /workflows/{{id}}/events`),"
            f" {self.watchers // self.workflows} on each of {self.workflows} workflows,"
            f" held by {self.clients} client processes (aiohttp's client); the gateway"
            f" (`python -m aggregator serve`, its own process, access log on) with"
            f" `cache.ttl_ms = {self.ttl_ms}`, `watch.max_watchers = {self.watchers + 1000}`,"
            f" `watch.max_watchers_per_workflow = {self.watchers // self.workflows + 100}`,"
            " the heartbeat at its default 15 s and a bulkhead of 1,024 calls per"
            " participant, as in the other scenarios. The bench process plays the three"
            f" participants. Over {self.seconds:.0f} s it made {self.changes} changes"
            f" ({self.rate:g} a second), each a new version of one random participant's"
            " record (shipping's also a new state) of a random workflow not changed in"
            " the three time to lives before.",
            "",
            "| measure | result |",
            "|---|---|",
            f"| all streams open, each with its first event | {self.open_seconds:.1f} s"
            f" ({self.failures} failed) |",
            f"| upstream calls per participant per workflow per time to live (target 1) |"
            f" mean {self.calls_mean:.3f}, each of the {len(every)} between"
            f" {min(every):.3f} and {max(every):.3f} |",
            f"| delivery latency, change to arrival: p50 / p99 / max |"
            f" {ms(percentile(d.latencies, 0.5))} / {ms(percentile(d.latencies, 0.99))} /"
            f" {ms(max(d.latencies, default=math.nan))} |",
            f"| of which waiting for the poller's call (one per change): p50 / p99 |"
            f" {ms(percentile(d.waits, 0.5))} / {ms(percentile(d.waits, 0.99))} |",
            f"| of which from that call to the arrival: p50 / p99 / max |"
            f" {ms(percentile(d.after_fetch, 0.5))} / {ms(percentile(d.after_fetch, 0.99))}"
            f" / {ms(max(d.after_fetch, default=math.nan))} |",
            f"| deliveries (a watcher told of a change) | {d.delivered:,} of"
            f" {d.expected:,}; {d.other} other events; {self.heartbeats:,} heartbeats read;"
            f" {self.ended} streams ended early |",
            f"| gateway resident memory per watcher | {self.kib_per_watcher:.1f} KiB"
            f" ({self.rss_before_kib / 1024:.0f} MiB before, {self.rss_open_kib / 1024:.0f}"
            f" MiB with every stream open, {self.rss_end_kib / 1024:.0f} MiB at the end) |",
            f"| the same per idle keep-alive connection (a fresh gateway) |"
            f" {self.kib_per_idle:.1f} KiB ({self.idle_before_kib / 1024:.0f} ->"
            f" {self.idle_open_kib / 1024:.0f} MiB; {self.idle_failures} failed); a watcher costs"
            f" {self.watcher_to_idle()} a bare connection |",
            f"| gateway CPU over the changes | {self.gateway_cpu / self.seconds:.1%} of one core |",
            "",
            f"With polling at the time to live, a change waits for the poller's next call:"
            f" up to one time to live ({ttl:g} s), about half of it on average, plus the"
            " work. So the latency is mostly that wait, by design; what the gateway adds is"
            " the second part (merging, rendering and framing the answer once, writing it"
            " to the workflow's streams, and the client reading it). A part is asked for"
            " again a time to live after it arrived, so a cycle is a time to live plus the"
            " call: a participant gets 19 or 20 calls in 40 s, and calls per time to live"
            " read 0.95-1.00 a pair; never more than one.",
        ]
        return [*lines, *(["", *self.notes] if self.notes else [])]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- the run --------------------------------------------------------------------------


def config(directory: Path, port: int, participants: int, args: argparse.Namespace) -> Path:
    path = gateway_config(directory, port, dict.fromkeys(PATHS, participants), 500, breaker=True)
    per_workflow = args.watchers // args.workflows
    path.write_text(
        path.read_text()
        + f"[cache]\nttl_ms = {args.ttl_ms}\n"
        + f"[watch]\nmax_watchers = {args.watchers + 1000}\n"
        + f"max_watchers_per_workflow = {per_workflow + 100}\n"
    )
    return path


async def warm(base: str, workflows: int) -> None:
    """Every workflow's status once, and a few plain requests."""
    async with aiohttp.ClientSession() as client:
        opening = asyncio.Semaphore(16)

        async def get(path: str) -> None:
            async with opening, client.get(base + path) as response:
                await response.read()

        paths = [f"/workflows/{workflow_id(n)}/status" for n in range(workflows)]
        await asyncio.gather(*map(get, [*paths, *["/healthz"] * 100]))


async def scenario(args: argparse.Namespace) -> Figures:
    started = time.monotonic()
    raise_fd_limit()
    ttl = args.ttl_ms / 1000
    table = Participants(args.workflows)
    runner = web.AppRunner(table.app(), access_log=None)
    await runner.setup()
    participants_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", participants_port).start()
    watchers_of = {
        w: sum(1 for s in range(args.watchers) if s % args.workflows == w)
        for w in range(args.workflows)
    }
    try:
        with tempfile.TemporaryDirectory() as tmp, processes() as running:
            directory = Path(tmp)

            async def gateway(name: str) -> tuple[str, int]:
                port = free_port()
                path = config(directory, port, participants_port, args)
                command = [PY, "-m", "aggregator", "serve", "--config", str(path)]
                await asyncio.to_thread(running.start, name, command, port)
                base = f"http://127.0.0.1:{port}"
                await warm(base, args.workflows)
                return base, running.running[name].pid

            say(f"watch: {args.watchers:,} idle keep-alive connections to a fresh gateway")
            base, pid = await gateway("idle-gateway")
            idle_before = rss_kib(pid)
            clients = await Clients.start(base, args, idle=True)
            opened = await clients.read()
            idle_open = rss_kib(pid)
            idle_failures = sum(c["failures"] for c in opened)
            await clients.close()
            await asyncio.to_thread(running.stop, "idle-gateway")

            say(
                f"watch: {args.watchers:,} event streams over {args.workflows} workflows,"
                f" {args.clients} client processes"
            )
            base, pid = await gateway("gateway")
            rss_before = rss_kib(pid)
            clients = await Clients.start(base, args, idle=False)
            opened = await clients.read()
            rss_open = rss_kib(pid)
            failures = sum(c["failures"] for c in opened)
            notes = [f"Streams that failed to open: {c['failed']}" for c in opened if c["failed"]]
            open_seconds = max(c["seconds"] for c in opened)
            say(f"watch: all open in {open_seconds:.1f} s; {args.seconds:g} s of changes")

            rng = random.Random(args.seed)
            changed: dict[tuple[int, int], float] = {}
            last_change = [-math.inf] * args.workflows
            quiet = 3 * ttl  # a change is picked up within one, two when a poll comes late
            cpu_before, queries_before = cpu_seconds(pid), table.queries_now()
            begin = time.monotonic()
            count = int(args.seconds * args.rate)
            for k in range(count):
                await asyncio.sleep(max(0.0, begin + k / args.rate - time.monotonic()))
                now = time.monotonic()
                eligible = [w for w in range(args.workflows) if now - last_change[w] > quiet]
                if not eligible:
                    continue
                workflow = rng.choice(eligible)
                number = table.change(workflow, rng.choice(PARTICIPANTS))
                changed[workflow, number] = last_change[workflow] = time.monotonic()
            await asyncio.sleep(max(0.0, begin + args.seconds - time.monotonic()))
            cpu_after, queries_after = cpu_seconds(pid), table.queries_now()
            measured = time.monotonic() - begin

            until = {str(w): number for w, number in enumerate(table.changes)}
            await clients.tell({"until": until, "timeout": 3 * ttl + 10})
            reports = await clients.read()
            rss_end = rss_kib(pid)
            await clients.close()
            await asyncio.to_thread(running.stop, "gateway")
    finally:
        await runner.cleanup()
    arrivals = [arrival for report in reports for arrival in report["deliveries"]]
    behind = sum(r["behind"] for r in reports)
    if behind:
        notes.append(f"{behind} streams had not seen their workflow's last change in time.")
    return Figures(
        watchers=args.watchers,
        workflows=args.workflows,
        clients=args.clients,
        ttl_ms=args.ttl_ms,
        seconds=measured,
        rate=args.rate,
        changes=len(changed),
        open_seconds=open_seconds,
        failures=failures,
        calls=calls_per_ttl(queries_before, queries_after, measured, ttl),
        deliveries=match(changed, table.first_served, arrivals, watchers_of),
        rss_before_kib=rss_before,
        rss_open_kib=rss_open,
        rss_end_kib=rss_end,
        idle_before_kib=idle_before,
        idle_open_kib=idle_open,
        idle_failures=idle_failures,
        gateway_cpu=cpu_after - cpu_before,
        heartbeats=sum(r["heartbeats"] for r in reports),
        ended=sum(r["ended"] for r in reports),
        elapsed=time.monotonic() - started,
        notes=notes,
    )


def run(args: argparse.Namespace) -> Figures:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(scenario(args))


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="bench/watch.py", description=__doc__.split("\n")[0])
    found.add_argument("--watchers", type=int, default=10_000)
    found.add_argument("--workflows", type=int, default=100)
    found.add_argument("--clients", type=int, default=2, help="client processes")
    found.add_argument("--seconds", type=float, default=40.0, help="the period of changes")
    found.add_argument("--rate", type=float, default=5.0, help="changes a second")
    found.add_argument("--ttl-ms", type=int, default=2000, help="the gateway's cache.ttl_ms")
    found.add_argument("--seed", type=int, default=20261206)
    found.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    roles = found.add_subparsers(dest="role")
    role = roles.add_parser("watchers", help="(internal) one client process")
    role.add_argument("--url", required=True)
    role.add_argument("--watchers", type=int, required=True)
    role.add_argument("--workflows", type=int, required=True)
    role.add_argument("--clients", type=int, required=True)
    role.add_argument("--index", type=int, required=True)
    role.add_argument("--idle", action="store_true", help="plain keep-alive connections")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.role == "watchers":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(hold(args))
    figures = run(args)
    for row in figures.rows():
        print(" | ".join(str(cell) for cell in row))
    write_section(args.out, figures.section())
    say(f"watch: done in {figures.elapsed:.0f} s; section written to {args.out}")
    return 0 if all(ok for *_, ok in figures.rows()) else 1


if __name__ == "__main__":
    sys.exit(main())
