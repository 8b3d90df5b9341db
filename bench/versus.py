"""The gateway against an earlier version of itself, on the cache-miss load (or,
with ``--hit``, on cached answers for one id).

python bench/versus.py BASELINE_DIR [--rounds 6] [--seconds 4] [--hit]

BASELINE_DIR is a checkout of the earlier version (e.g. ``git worktree add
/tmp/old <rev>``); its gateway runs with ``PYTHONPATH=BASELINE_DIR`` beside ours,
on the same fast participants, and wrk alternates between them (a new id every
request, 50 connections), so both see the same drift of a noisy machine. Prints
each round's requests per second and the median ratio, ours / baseline, with the
naive composition measured in the same rounds as a yardstick for both (on
misses: it has no cache).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from run import (  # bench/run.py, beside this file
    HERE,
    PATHS,
    PY,
    free_port,
    gateway_config,
    lua_unique_ids,
    processes,
    warm,
    wrk,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/versus.py")
    parser.add_argument("baseline", type=Path, help="a checkout of the earlier version")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0, help="each wrk run")
    parser.add_argument("--hit", action="store_true", help="one cached id, not a new one each")
    args = parser.parse_args(argv)
    if not (args.baseline / "aggregator" / "__init__.py").is_file():
        print(f"bench/versus.py: {args.baseline} holds no aggregator package", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, processes() as running:
        directory = Path(tmp)
        ports = {name: free_port() for name in PATHS}
        for name, port in ports.items():
            servers = str(HERE / "servers.py")
            running.start(
                name, [PY, servers, "participant", "--name", name, "--port", str(port)], port
            )
        urls = [f"http://127.0.0.1:{ports[n]}{PATHS[n]}" for n in PATHS]
        ours, theirs, naive = free_port(), free_port(), free_port()
        for name, port, env in (
            ("ours", ours, None),
            ("baseline", theirs, {"PYTHONPATH": str(args.baseline.resolve())}),
        ):
            config = gateway_config(directory, port, ports, 500, breaker=True)
            running.start(
                name, [PY, "-m", "aggregator", "serve", "--config", str(config)], port, env
            )
        naive_args = [PY, str(HERE / "servers.py"), "naive", "--port", str(naive), "--participants"]
        running.start("naive", [*naive_args, *urls], naive)
        contenders = [("ours", ours), ("baseline", theirs)]
        if args.hit:
            for port in (ours, theirs):
                warm(f"http://127.0.0.1:{port}", "hot", 1)
        else:
            contenders.append(("naive", naive))
        ratios, yardsticks = [], []
        for n in range(args.rounds):
            runs = {}
            for who, port in contenders:
                if args.hit:
                    url, script = f"http://127.0.0.1:{port}/workflows/hot-0/status", None
                else:
                    url, script = (
                        f"http://127.0.0.1:{port}/",
                        lua_unique_ids(directory, f"{who}{n}"),
                    )
                runs[who] = wrk(url, seconds=args.seconds, connections=50, script=script)
            ratio = runs["ours"].rps / runs["baseline"].rps
            ratios.append(ratio)
            line = f"round {n}: ours {runs['ours'].rps:,.0f}, baseline {runs['baseline'].rps:,.0f}"
            if "naive" in runs:
                yardsticks.append(
                    (runs["ours"].rps / runs["naive"].rps, runs["baseline"].rps / runs["naive"].rps)
                )
                line += f", naive {runs['naive'].rps:,.0f}"
            print(f"{line} rps; ours / baseline {ratio:.3f}", flush=True)
        print(f"median ours / baseline: {statistics.median(ratios):.3f}")
        if yardsticks:
            ours_naive = statistics.median(y[0] for y in yardsticks)
            theirs_naive = statistics.median(y[1] for y in yardsticks)
            print(f"median of naive: ours {ours_naive:.2f}, baseline {theirs_naive:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
