"""The rate limit against the two libraries that could do its job, in one run.

    .venv/bin/pip install aiolimiter asyncio-throttle   # whichever is missing
    .venv/bin/python bench/rate_limit.py [--calls 20000] [--rounds 15] [--turns 5]
        [--loop uvloop|asyncio]

1. Refusal: with the bucket spent and 50 ms left before the deadline, how long a
   caller waits before it learns that its call cannot go out in time. The
   libraries can only be bounded from outside (``asyncio.wait_for``), or asked
   whether a call may go out right now (aiolimiter's ``has_capacity``).
2. Order: at 10 calls a second with a burst of one, a call goes out at once,
   three callers queue 1 ms later and three more arrive as the next token is
   due (100 ms); the order in which their calls go out.
3. Cost: an uncontended acquire, as the participant path would do it (for
   ``RateLimit``: reserve, and sleep only when told to). The candidates take
   turns within each round, in a rotated order, so a noisy machine slows them
   alike, and each counts its fastest turn of the round; the report gives, per
   candidate, the median over rounds of its time per call divided by
   ``RateLimit``'s, and the lowest and highest such ratio.

A library that is not installed is left out and named.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aggregator._rate_limit import RateLimit

UNLIMITED = 10**9  # calls per second: no acquire ever waits
DEADLINE = 0.05  # seconds left for the call in the refusal scenario

Loop = Callable[[int], Awaitable[None]]  # makes n uncontended acquires


def optional(module: str) -> Any:
    """The module, or None: imported by name, so that this file runs and type-checks
    whether the libraries are installed or not (neither need be a dependency)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


AIOLIMITER = optional("aiolimiter")
THROTTLE = optional("asyncio_throttle")


def our_loop() -> Loop:
    limit = RateLimit(UNLIMITED, clock=time.time)  # the aggregator's default clock

    async def run(n: int) -> None:
        for _ in range(n):
            wait = limit.reserve(DEADLINE)
            if wait is None:
                raise AssertionError("refused")
            if wait > 0:
                await asyncio.sleep(wait)

    return run


def aiolimiter_loop() -> Loop:
    limiter = AIOLIMITER.AsyncLimiter(UNLIMITED, 1.0)

    async def run(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()

    return run


def throttle_loop() -> Loop:
    throttler = THROTTLE.Throttler(UNLIMITED)

    async def run(n: int) -> None:
        for _ in range(n):
            await throttler.acquire()

    return run


def bare_loop() -> Loop:
    async def run(n: int) -> None:
        for _ in range(n):
            pass

    return run


async def refusal() -> list[tuple[str, str, float]]:
    """(candidate, how it is bounded, seconds until the caller knew it is throttled)."""
    found: list[tuple[str, str, float]] = []

    limit = RateLimit(1, clock=time.time)
    limit.reserve(DEADLINE)
    started = time.perf_counter()
    assert limit.reserve(DEADLINE) is None
    found.append(("RateLimit", "reserve(deadline left) is None", time.perf_counter() - started))

    async def bounded(name: str, acquire: Callable[[], Awaitable[None]]) -> None:
        await acquire()  # spends the bucket
        started = time.perf_counter()
        try:
            await asyncio.wait_for(acquire(), DEADLINE)
        except TimeoutError:
            knew = time.perf_counter() - started
            found.append((name, "wait_for(acquire(), deadline left)", knew))
        else:
            raise AssertionError(f"{name} let a second call through")

    if AIOLIMITER is not None:
        await bounded("aiolimiter", AIOLIMITER.AsyncLimiter(1, 1.0).acquire)
        limiter = AIOLIMITER.AsyncLimiter(1, 1.0)
        await limiter.acquire()
        started = time.perf_counter()
        assert not limiter.has_capacity()  # even were the token 1 ms away
        found.append(("aiolimiter", "has_capacity() is False", time.perf_counter() - started))
    if THROTTLE is not None:
        await bounded("asyncio-throttle", THROTTLE.Throttler(1).acquire)
    return found


async def order() -> list[tuple[str, str]]:
    """(candidate, the callers in the order their calls went out)."""
    loop = asyncio.get_running_loop()
    arrivals = [("first", 0.0)] + [(f"q{i}", 0.001) for i in range(3)]
    arrivals += [(f"late{i}", 0.1 + 0.0001 * i) for i in range(3)]

    async def ours() -> None:
        wait = limit.reserve(float("inf"))
        assert wait is not None
        if wait > 0:
            await asyncio.sleep(wait)

    limit = RateLimit(10, burst=1, clock=loop.time)
    candidates: list[tuple[str, Callable[[], Awaitable[None]]]] = [("RateLimit", ours)]
    if AIOLIMITER is not None:
        candidates.append(("aiolimiter", AIOLIMITER.AsyncLimiter(1, 0.1).acquire))
    if THROTTLE is not None:
        candidates.append(("asyncio-throttle", THROTTLE.Throttler(1, 0.1).acquire))

    async def caller(
        who: str, at: float, acquire: Callable[[], Awaitable[None]], went: list[str]
    ) -> None:
        await asyncio.sleep(at)
        await acquire()
        went.append(who)

    found: list[tuple[str, str]] = []
    for name, acquire in candidates:
        went: list[str] = []
        await asyncio.gather(*(caller(who, at, acquire, went) for who, at in arrivals))
        found.append((name, " ".join(went)))
    return found


async def costs(calls: int, rounds: int, turns: int) -> dict[str, list[float]]:
    """Per candidate, its time per call over ``RateLimit``'s, one ratio per round.

    In a round the candidates take ``turns`` turns each, in a rotated order; a
    candidate's time in the round is its fastest turn (noise only slows a turn).
    """
    makers: dict[str, Callable[[], Loop]] = {"RateLimit": our_loop, "bare loop": bare_loop}
    if AIOLIMITER is not None:
        makers["aiolimiter"] = aiolimiter_loop
    if THROTTLE is not None:
        makers["asyncio-throttle"] = throttle_loop
    names = list(makers)
    for make in makers.values():  # warm up
        await make()(calls)
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        took = dict.fromkeys(names, float("inf"))
        for turn in range(turns):
            shift = (round_ + turn) % len(names)
            for name in names[shift:] + names[:shift]:
                run = makers[name]()  # a fresh limiter: no state carried between turns
                started = time.perf_counter()
                await run(calls)
                took[name] = min(took[name], time.perf_counter() - started)
        for name in names:
            ratios[name].append(took[name] / took["RateLimit"])
    return ratios


async def main(calls: int, rounds: int, turns: int) -> None:
    for name, module in (("aiolimiter", AIOLIMITER), ("asyncio-throttle", THROTTLE)):
        if module is None:
            print(f"{name} is not installed: left out")
    print(f"\nRefusal with {DEADLINE * 1000:.0f} ms left and the bucket spent:")
    for name, how, seconds in await refusal():
        print(f"  {name:17} {how:38} knew after {seconds * 1000:7.3f} ms")
    print("\nOrder of the calls (first; q0-q2 queued at 1 ms; late0-late2 at 100 ms):")
    for name, went in await order():
        print(f"  {name:17} {went}")
    print(
        f"\nUncontended acquire, {rounds} rounds of {turns} turns of {calls} calls:"
        " time per call / RateLimit's"
    )
    for name, found in (await costs(calls, rounds, turns)).items():
        print(
            f"  {name:17} median {statistics.median(found):5.2f}"
            f"  (rounds from {min(found):.2f} to {max(found):.2f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.calls, args.rounds, args.turns))
    else:
        asyncio.run(main(args.calls, args.rounds, args.turns))
