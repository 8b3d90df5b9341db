"""``python -m participants``: run the reference participants on their own.

Point any gateway at them; with ``--place-every`` a shop front places orders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ._chance import Chance
from ._choreography import DEFAULT_PORTS, SERVICES, Choreography, ChoreographyConfig, ListenError

PROG = "python -m participants"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only", action="append", choices=sorted(SERVICES), help="run only this participant"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, metavar="PORT")
    parser.add_argument("--db-dir", type=Path, help="keep the SQLite files here")
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


def config_from(args: argparse.Namespace) -> ChoreographyConfig:
    if not 0 <= args.duplicate_rate <= 1:
        raise ValueError("--duplicate-rate must be between 0 and 1")
    return ChoreographyConfig(
        host=args.host,
        ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
        only=tuple(args.only or DEFAULT_PORTS),
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
    )


async def serve(config: ChoreographyConfig, place_every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Choreography(config) as run:
        for name, url in run.urls.items():
            print(f"{name:<9} {url}   (database {run.db_dir}/{name}.sqlite3)", flush=True)
        print("aggregator configuration:", flush=True)
        for name, url in run.urls.items():
            print(f'  [participants.{name}]\n  url = "{url}"', flush=True)
        while not stop.is_set():
            if place_every > 0:
                workflow_id = await run.place_order()
                print(f"placed {workflow_id}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), place_every if place_every > 0 else None)


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
    try:
        asyncio.run(serve(config_from(args), args.place_every))
    except (ListenError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, ListenError) else 2
    return 0


def command(argv: Sequence[str]) -> int:
    """run the reference participants (payment, inventory, shipping)"""
    return main(argv, prog="status-aggregator participants")


if __name__ == "__main__":
    sys.exit(main())
