"""What tracing costs the gateway: with no SDK, and with the SDK recording every span.

python bench/tracing.py [--rounds 4] [--seconds 2] [--baseline REV]

Three gateways on the same fast participants, each in its own process:

- ``before``: the code of the commit before tracing came in (``git archive`` of
  REV's aggregator/ and contracts/, run with ``PYTHONPATH`` on it): the same
  build with the tracing code really absent, not switched off;
- ``no SDK``: this tree, no tracer provider set: the OpenTelemetry API's no-op,
  which is what runs without the SDK installed (the SDK is imported only when
  ``OTEL_*`` variables ask for it, and none are set);
- ``SDK``: this tree with the SDK's ``TracerProvider`` set, every span sampled,
  behind a ``BatchSpanProcessor`` whose exporter does nothing: what recording
  the spans costs, without the cost of sending them anywhere.

wrk (50 connections) alternates between them, round after round, on cached
answers for one id and on misses (a new id every request), so all three see the
same drift of a noisy machine; the results are ratios of runs of one round.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from run import (  # bench/run.py, beside this file
    HERE,
    PATHS,
    PY,
    ROOT,
    free_port,
    gateway_config,
    lua_unique_ids,
    processes,
    say,
    warm,
    write_section,
    wrk,
)

HEADING = "## Tracing: what the spans cost"
WHO = ("before", "no SDK", "SDK")
LOADS = ("hit", "miss")


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def before_tracing() -> str:
    """The commit before the one that brought tracing in (aggregator/_tracing.py)."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "aggregator/_tracing.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("bench/tracing.py: no commit adds aggregator/_tracing.py; pass --baseline")
    return f"{added[-1]}^"


def export(rev: str, directory: Path) -> str:
    """REV's aggregator and contracts packages, unpacked in ``directory``; its short hash."""
    archive = subprocess.run(
        ["git", "archive", rev, "aggregator", "contracts"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    found = subprocess.run(
        [PY, "-c", "import aggregator, sys; sys.stdout.write(aggregator.__file__)"],
        cwd=directory,
        env={"PYTHONPATH": str(directory), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert found.startswith(str(directory)), found  # the baseline, not this tree
    return subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def serve_traced(config: str) -> int:
    """(internal) ``serve`` with the SDK recording every span, exported nowhere."""
    from collections.abc import Sequence as Spans

    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from aggregator._cli import main as cli

    class Nowhere(SpanExporter):
        def export(self, spans: Spans[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    trace.set_tracer_provider(provider)
    return cli(["serve", "--config", config])


@dataclass
class Measured:
    baseline: str
    rounds: int
    seconds: int
    elapsed: float = 0.0
    rps: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def ratios(self, load: str, who: str, to: str) -> list[float]:
        return [a / b for a, b in zip(self.rps[(load, who)], self.rps[(load, to)], strict=True)]

    def ratio(self, load: str, who: str, to: str) -> str:
        found = self.ratios(load, who, to)
        return f"{statistics.median(found):.2f} ({min(found):.2f}-{max(found):.2f})"

    def rows(self) -> list[tuple[str, str, str, str, bool]]:
        untraced = [statistics.median(self.ratios(load, "no SDK", "before")) for load in LOADS]
        return [
            (
                "tracing without an SDK",
                "throughput, no SDK / the code before tracing: hit; miss",
                ">= 0.95 (the no-op costs nothing measurable)",
                f"{untraced[0]:.2f}; {untraced[1]:.2f}",
                min(untraced) >= 0.95,
            ),
            (
                "tracing with the SDK (no-op exporter)",
                "throughput, SDK / no SDK: hit; miss",
                "reported",
                "; ".join(
                    f"{statistics.median(self.ratios(ld, 'SDK', 'no SDK')):.2f}" for ld in LOADS
                ),
                True,
            ),
        ]

    def section(self) -> list[str]:
        def cell(load: str, who: str) -> str:
            return f"{statistics.median(self.rps[(load, who)]):,.0f}"

        return [
            HEADING,
            "",
            f"`make bench` or `python bench/tracing.py`, {stamp()}, {self.elapsed:.0f} s."
            f" {self.rounds} rounds; in each, wrk ({self.seconds:g} s, 50 connections) on each"
            " gateway in turn, cached answers for one id and then misses (a new id every request)."
            f" `before` is the code of {self.baseline}, the commit before tracing, unpacked"
            " with `git archive` and run with `PYTHONPATH` on it: the tracing code is absent,"
            " not switched off. `no SDK` is this tree with no tracer provider set (the API's"
            " no-op: what runs without the SDK installed, since the SDK is imported only when"
            " `OTEL_*` variables ask for it). `SDK` sets the SDK's `TracerProvider`, every"
            " span sampled, behind a `BatchSpanProcessor` whose exporter does nothing.",
            "",
            "| requests/s, median of the rounds | before | no SDK | SDK |",
            "|---|---|---|---|",
            *(f"| {load} | {' | '.join(cell(load, who) for who in WHO)} |" for load in LOADS),
            "",
            "| ratio of runs in the same round: median (range) | hit | miss |",
            "|---|---|---|",
            "| no SDK / before | "
            + " | ".join(self.ratio(load, "no SDK", "before") for load in LOADS)
            + " |",
            "| SDK / no SDK | "
            + " | ".join(self.ratio(load, "SDK", "no SDK") for load in LOADS)
            + " |",
            "",
            "Without an SDK the aggregator sees at start-up that the provider is the API's"
            " no-op and composes its pipelines without the tracing stage; the gateway's only"
            " extra work per request is reading that flag (and, on a miss whose caller sent a"
            " `traceparent`, the W3C propagator's check of it). With the SDK, a hit records"
            " one SERVER span and a miss four spans (the request and three participant calls)"
            " and sends a `traceparent` of its own to each participant.",
        ]


def run(args: argparse.Namespace) -> Measured:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, processes() as running:
        directory = Path(tmp)
        old = directory / "before"
        old.mkdir()
        measured = Measured(
            export(args.baseline or before_tracing(), old), args.rounds, args.seconds
        )
        ports = {name: free_port() for name in PATHS}
        for name, port in ports.items():
            servers = str(HERE / "servers.py")
            running.start(
                name, [PY, servers, "participant", "--name", name, "--port", str(port)], port
            )
        gateways = {who: free_port() for who in WHO}
        for who, port in gateways.items():
            config = str(gateway_config(directory, port, ports, 500, breaker=True))
            if who == "SDK":
                command = [PY, str(Path(__file__)), "serve-traced", "--config", config]
            else:
                command = [PY, "-m", "aggregator", "serve", "--config", config]
            env = {"PYTHONPATH": str(old)} if who == "before" else None
            running.start(who, command, port, env)
            warm(f"http://127.0.0.1:{port}", "hot", 1)
        for n in range(args.rounds):
            for load in LOADS:
                for who, port in gateways.items():
                    if load == "hit":
                        url, script = f"http://127.0.0.1:{port}/workflows/hot-0/status", None
                    else:
                        prefix = f"{who.replace(' ', '')}{n}"
                        url, script = f"http://127.0.0.1:{port}/", lua_unique_ids(directory, prefix)
                    result = wrk(url, seconds=args.seconds, connections=50, script=script)
                    measured.rps.setdefault((load, who), []).append(result.rps)
            say(
                f"tracing round {n}: "
                + "; ".join(
                    f"{load} " + ", ".join(f"{w} {measured.rps[(load, w)][-1]:,.0f}" for w in WHO)
                    for load in LOADS
                )
            )
    measured.elapsed = time.monotonic() - started
    return measured


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="bench/tracing.py", description=__doc__.split("\n")[0])
    found.add_argument("--rounds", type=int, default=4)
    found.add_argument("--seconds", type=int, default=2, help="each wrk run (whole seconds)")
    found.add_argument("--baseline", help="the commit to compare with (default: before tracing)")
    found.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    roles = found.add_subparsers(dest="role")
    role = roles.add_parser("serve-traced", help="(internal) a gateway recording every span")
    role.add_argument("--config", required=True)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.role == "serve-traced":
        return serve_traced(args.config)
    measured = run(args)
    for row in measured.rows():
        print(" | ".join(str(cell) for cell in row))
    write_section(args.out, measured.section())
    return 0 if all(ok for *_, ok in measured.rows()) else 1


if __name__ == "__main__":
    sys.exit(main())
