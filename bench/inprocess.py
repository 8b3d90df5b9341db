"""The gateway library's own cost, in-process: no network, no HTTP server.

python bench/inprocess.py [--misses 2000] [--rounds 7] [--profile]

A miss asks three instant in-memory participants for a new id and renders the
answer's JSON, with the stores already at their bound (so it also evicts); a
hit renders a cached answer; an outage answer shows one participant's last
good part while its circuit is open. Reports microseconds of CPU per request
(best round for misses).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Sequence

import uvloop
from servers import DOMAIN, PATHS, STATES  # bench/servers.py, beside this file

from aggregator import (
    OutboundRequest,
    Settings,
    StatusAggregator,
    TransportFailure,
    TransportResponse,
)
from contracts import ErrorKind, Outcome

HEADERS = {"content-type": "application/json"}


def canned(name: str) -> tuple[bytes, bytes]:
    """The participant's answer, split where the workflow id goes."""
    import json

    body = json.dumps(
        {
            "workflow_id": "\0",
            "state": STATES[name],
            "version": 1,
            "updated_at": "2026-01-01T10:00:00Z",
            **DOMAIN[name],
        }
    ).encode()
    head, tail = body.split(b"\\u0000")
    return head, tail


DOWN: set[str] = set()


async def instant(request: OutboundRequest) -> TransportResponse | TransportFailure:
    _, _, rest = request.url.partition("//")
    host_path = rest.split("/")
    name = host_path[0]
    if name in DOWN:
        return TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "refused", True)
    head, tail = BODIES[name]
    return TransportResponse(200, HEADERS, head + host_path[-1].encode() + tail)


BODIES = {name: canned(name) for name in PATHS}


async def measure(misses: int, rounds: int, profile: bool) -> None:
    settings = Settings(participants={n: {"url": f"http://{n}{PATHS[n]}"} for n in PATHS})
    offset = [0.0]
    clock = lambda: time.time() + offset[0]  # noqa: E731
    async with StatusAggregator(settings, transport=instant, clock=clock) as aggregator:
        # Warm up until the stores are at their bound, as under sustained load: from
        # then on every miss also evicts.
        for n in range(settings.cache.max_entries if misses else 200):
            (await aggregator.answer(f"warm-{n}")).json()
        best = float("inf")
        profiler = cProfile.Profile() if profile else None
        for r in range(rounds):
            started = time.process_time()
            if profiler:
                profiler.enable()
            for n in range(misses):
                (await aggregator.answer(f"miss-{r}-{n}")).json()
            if profiler:
                profiler.disable()
            if misses:
                best = min(best, (time.process_time() - started) / misses)
        if misses:
            print(f"miss: {best * 1e6:.1f} us of CPU (best of {rounds} rounds of {misses})")
        hits = 20_000
        started = time.process_time()
        for _ in range(hits):
            (await aggregator.answer("warm-0")).json()
        print(f"hit: {(time.process_time() - started) / hits * 1e6:.1f} us of CPU")
        for n in range(200):  # the parts that will stand in
            (await aggregator.answer(f"out-{n}")).json()
        DOWN.add("shipping")
        offset[0] += 3  # every part past its time to live
        for n in range(200):  # opens the circuit; shipping's last good parts stand in
            (await aggregator.answer(f"out-{n}")).json()
        started = time.process_time()
        for n in range(hits):
            (await aggregator.answer(f"out-{n % 200}")).json()
        print(f"outage: {(time.process_time() - started) / hits * 1e6:.1f} us of CPU")
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/inprocess.py")
    parser.add_argument("--misses", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    uvloop.run(measure(args.misses, args.rounds, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
