"""Which asyncio client for the shared store: redis-py or valkey-py, each with its
parser in C (hiredis, libvalkey), on one valkey-server.

python bench/valkey_client.py [--rounds 5] [--requests 20000]

Each round runs both in turn, 50 commands in flight, on what the gateway sends:
one call of a script reading (and leasing) three parts. The result is the ratio
of their rates within each round, so both see the same drift of a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replicas import valkey  # bench/replicas.py, beside this file

from aggregator._shared_store import TAKE

CLIENTS = ("valkey-py", "redis-py")


def client(name: str, port: int) -> Any:
    if name == "valkey-py":
        import valkey.asyncio as chosen
    else:
        import redis.asyncio as chosen  # type: ignore[no-redef]
    return chosen.Valkey(port=port) if name == "valkey-py" else chosen.Redis(port=port)


async def rate(name: str, port: int, requests: int, in_flight: int = 50) -> float:
    connection = client(name, port)
    script = connection.register_script(TAKE)
    keys = [f"bench:{{p{n}}}:part".encode() for n in range(6)]
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            await script(keys=keys, args=[0, 1000, b"a", b"b", b"c"])

    await one()
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    elapsed = time.perf_counter() - started
    await connection.aclose()
    return requests / elapsed


def measure(rounds: int, requests: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in CLIENTS}
    with tempfile.TemporaryDirectory() as tmp, valkey(Path(tmp)) as (port, _):
        for _ in range(rounds):
            for name in CLIENTS:
                rates[name].append(asyncio.run(rate(name, port, requests)))
    return rates


def row(rates: dict[str, list[float]]) -> tuple[str, str, str, str, bool]:
    ratios = [v / r for v, r in zip(rates["valkey-py"], rates["redis-py"], strict=True)]
    return (
        "shared store client (a script call, 50 in flight)",
        "calls/s, valkey-py / redis-py, median of rounds",
        ">= 1 keeps valkey-py",
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f});"
        f" {statistics.median(rates['valkey-py']):,.0f}"
        f" / {statistics.median(rates['redis-py']):,.0f}",
        statistics.median(ratios) >= 1,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/valkey_client.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args(argv)
    found = row(measure(args.rounds, args.requests))
    print(" | ".join(str(cell) for cell in found))
    return 0 if found[-1] else 1


if __name__ == "__main__":
    raise SystemExit(main())
