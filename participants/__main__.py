"""``python -m participants``: run the reference participants on their own.

Point any gateway at them; with ``--place-every`` a shop front places orders.
On the NATS bus (the default) each participant runs as a process of its own;
one participant named with ``--only`` and a server given with ``--nats-url``
runs in this process, as a team would deploy it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ._chance import Chance
from ._choreography import DEFAULT_PORTS, SERVICES, ChoreographyConfig, ListenError
from ._deployed import Deployed, Deployment
from ._nats import NATS_SCHEMES, STREAM, BusError
from ._processes import CHILD_PROG, ProcessChoreography, ProcessError, open_choreography
from ._resource import InUse
from ._tracing import configure_logging, export_spans

PROG = CHILD_PROG  # what a supervising process reads in a child's last line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", action="append", choices=sorted(SERVICES), help="run only this participant"
    )
    parser.add_argument(
        "--bus",
        choices=("nats", "memory"),
        default="nats",
        help="nats: each participant a process, events through JetStream; "
        "memory: all in this process, an in-process bus",
    )
    parser.add_argument(
        "--nats-url",
        metavar="URL",
        help="a NATS server with JetStream (default: start one for the run)",
    )
    parser.add_argument(
        "--ack-wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="JetStream delivers an event again when unacknowledged this long",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, metavar="PORT")
    parser.add_argument(
        "--data-dir",
        "--db-dir",
        dest="db_dir",
        type=Path,
        help="keep the SQLite files (and the JetStream server's storage) here"
        " (default: a temporary directory, removed at the end; a participant run alone"
        " with --only and --nats-url: the current directory, kept)",
    )
    parser.add_argument("--seed", type=int, default=1, help="decides failures and step times")
    parser.add_argument(
        "--min-delay", type=float, default=0.5, help="seconds a step takes, at least"
    )
    parser.add_argument(
        "--max-delay", type=float, default=2.5, help="seconds a step takes, at most"
    )
    parser.add_argument("--duplicate-rate", type=float, default=0.05, help="events delivered twice")
    parser.add_argument(
        "--lost-event-rate",
        type=float,
        default=0.0,
        help="paid orders whose consumer drops an event, so the order stops",
    )
    parser.add_argument(
        "--rogue-event-rate",
        type=float,
        default=0.0,
        help="delivered orders that then get a rogue OutOfStock, so payment refunds them",
    )
    parser.add_argument("--admin", action="store_true", help="enable the /_admin/faults endpoint")
    parser.add_argument(
        "--state-hook",
        action="store_true",
        help="enable POST /_contract/state, for the contract verification kit",
    )
    parser.add_argument(
        "--place-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="place an order this often",
    )
    parser.add_argument(
        "--shop-front",
        action="store_true",
        help="no participant: only place orders (with --place-every) on the NATS server",
    )
    parser.add_argument(
        "--trace-file",
        type=Path,
        metavar="PATH",
        help="write this process's spans here as JSON lines (needs the otel extra)",
    )
    parser.add_argument(
        "--trace-workflow",
        metavar="ID",
        help="with --trace-file: only the spans of traces that touch this workflow",
    )


def config_from(args: argparse.Namespace) -> ChoreographyConfig:
    if not 0 <= args.duplicate_rate <= 1:
        raise ValueError("--duplicate-rate must be between 0 and 1")
    if args.ack_wait <= 0:
        raise ValueError("--ack-wait must be positive")
    if args.nats_url is not None:
        if args.bus != "nats":
            raise ValueError("--nats-url is for --bus nats")
        if urlsplit(args.nats_url).scheme not in NATS_SCHEMES:
            raise ValueError(f"--nats-url must be a nats:// URL, not {args.nats_url!r}")
    only = tuple(args.only or DEFAULT_PORTS)
    if args.shop_front:
        if args.bus != "nats" or args.only:
            raise ValueError("--shop-front runs no participant: it needs --bus nats, not --only")
        only = ()
    elif args.bus == "nats" and len(only) == 1 and args.nats_url and args.place_every:
        raise ValueError("a participant alone does not place orders: run a --shop-front beside it")
    return ChoreographyConfig(
        host=args.host,
        ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
        only=only,
        db_dir=args.db_dir,
        chance=Chance(
            seed=args.seed,
            min_delay=args.min_delay,
            max_delay=args.max_delay,
            lost_event_rate=args.lost_event_rate,
            rogue_event_rate=args.rogue_event_rate,
        ),
        duplicate_rate=args.duplicate_rate,
        admin=args.admin,
        state_hook=args.state_hook,
        bus=args.bus,
        nats_url=args.nats_url,
        ack_wait=args.ack_wait,
        # Participant processes write their spans beside this process's.
        trace_dir=None if args.trace_file is None else args.trace_file.parent,
        trace_workflow=args.trace_workflow,
    )


async def serve(config: ChoreographyConfig, place_every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    if config.bus == "nats" and len(config.only) == 1 and config.nats_url:
        await _serve_one(config, stop)
        return
    async with open_choreography(config) as run:
        for name, url in run.urls.items():
            print(f"{name:<9} {url}   (database {run.db_dir}/{name}.sqlite3)", flush=True)
        if isinstance(run, ProcessChoreography):
            print(f"events    {run.nats_url}   (JetStream stream {STREAM})", flush=True)
        if run.urls:
            print("aggregator configuration:", flush=True)
        for name, url in run.urls.items():
            print(f'  [participants.{name}]\n  url = "{url}"', flush=True)
        while not stop.is_set():
            if place_every > 0:
                workflow_id = await run.place_order()
                print(f"placed {workflow_id}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), place_every if place_every > 0 else None)


async def _serve_one(config: ChoreographyConfig, stop: asyncio.Event) -> None:
    """One participant in this process, on the given NATS server."""
    name = config.only[0]
    assert config.nats_url is not None
    deployment = Deployment(
        name=name,
        nats_url=config.nats_url,
        db_dir=config.db_dir or Path("."),
        host=config.host,
        port=config.ports.get(name, 0),
        chance=config.chance,
        ack_wait=config.ack_wait,
        admin=config.admin,
        state_hook=config.state_hook,
    )
    async with Deployed(deployment) as one:
        # The first line is for a supervising process: this participant listens.
        print(f"ready {name} {one.base_url}", flush=True)
        database = deployment.db_dir / f"{name}.sqlite3"
        print(f"{name:<9} {one.url}   (database {database})", flush=True)
        await stop.wait()


class _ShownDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, but for the options whose default is none or off."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the reference participants.",
        formatter_class=_ShownDefaults,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = config_from(args)
        if args.trace_file is not None:
            alone = len(config.only) == 1 and config.nats_url
            service = config.only[0] if alone else "shop-front"
            export_spans(args.trace_file, service, args.trace_workflow)
        asyncio.run(serve(config, args.place_every))
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (ListenError, BusError, ProcessError, InUse) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the data directory: not a directory, not writable
        print(f"{prog}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    return 0


def command(argv: Sequence[str]) -> int:
    """run the reference participants (payment, inventory, shipping)"""
    return main(argv, prog="status-aggregator participants")


if __name__ == "__main__":
    sys.exit(main())
