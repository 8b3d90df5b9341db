"""The benchmark reads wrk's report correctly, writes its sections where they belong,
and the watch scenario matches arrivals to changes (the runs themselves are `make
bench`; a small watch run here keeps its processes working together)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[1] / "bench"


def load(name: str) -> ModuleType:
    """A script of bench/, under the name its neighbours import it by."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = load("run")
watch = load("watch")

REPORT = """Running 5s test @ http://127.0.0.1:9301/workflows/o-1/status
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  412.00us  12.50ms   82.50%
    Req/Sec    16.21k   500.12    17.00k    50.00%
  Latency Distribution
     50%    3.05ms
     75%    3.30ms
     90%    3.60ms
     99%  850.00us
  80650 requests in 5.00s, 101.2MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  16128.57
Transfer/sec:     20.24MB
seen=80650
matched=80647
"""


def test_a_wrk_report_is_read() -> None:
    result = bench.parse_wrk(REPORT)
    assert (result.rps, result.p50_ms, result.p99_ms) == (16128.57, 3.05, 0.85)
    assert (result.requests, result.non_2xx) == (80650, 3)
    assert result.checked == {"seen": 80650, "matched": 80647}


def test_an_unreadable_report_says_so() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        bench.parse_wrk("wrk: connection refused")


def test_paired_runs_report_the_round_with_the_median_ratio() -> None:
    def run(rps: float) -> object:
        return bench.Wrk(rps=rps, p50_ms=1.0, p99_ms=2.0, requests=1, non_2xx=0, checked={})

    ours = iter([900.0, 500.0, 800.0])
    theirs = iter([1000.0, 1000.0, 1000.0])
    calls: list[int] = []

    def first(n: int) -> object:
        calls.append(n)
        return run(next(ours))

    a, b, ratio = bench.paired(first, lambda _: run(next(theirs)))
    assert calls == [0, 1, 2]
    assert ratio == 0.8 and a.rps == 800.0 and b.rps == 1000.0


def test_a_section_goes_before_the_notes_then_replaces_itself(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Benchmark results\n\n| table |\n\n{bench.NOTES_MARKER}\n\nnotes\n")
    bench.write_section(results, ["## Watching", "", "first"])
    bench.write_section(results, ["## Other", "", "other"])
    bench.write_section(results, ["## Watching", "", "second", "more"])
    assert results.read_text() == (
        "# Benchmark results\n\n| table |\n\n## Watching\n\nsecond\nmore\n\n"
        f"## Other\n\nother\n\n{bench.NOTES_MARKER}\n\nnotes\n"
    )


def test_arrivals_are_matched_to_their_changes() -> None:
    changed = {(0, 2): 10.0, (1, 2): 11.0, (0, 3): 20.0}  # (workflow, change number): when
    served = {(0, 2): 10.5, (1, 2): 12.0, (0, 3): 21.0}
    arrivals = [
        (0, 0, 2, 10.6),  # stream, workflow, change number, when
        (2, 0, 2, 10.7),
        (2, 0, 2, 10.9),  # told twice: not a delivery
        (1, 1, 2, 12.1),
        (0, 0, 3, 21.2),
        (0, 0, 1, 30.0),  # no change of ours
    ]
    found = watch.match(changed, served, arrivals, {0: 2, 1: 1})
    assert found.latencies == pytest.approx([0.6, 0.7, 1.1, 1.2])
    assert found.after_fetch == pytest.approx([0.1, 0.2, 0.1, 0.2])
    assert found.waits == pytest.approx([0.5, 1.0, 1.0])
    assert (found.delivered, found.expected, found.other) == (4, 5, 2)


def test_calls_are_counted_per_time_to_live_and_percentiles_by_nearest_rank() -> None:
    calls = watch.calls_per_ttl({"payment": [3, 0]}, {"payment": [23, 19]}, 40.0, 2.0)
    assert calls == {"payment": [1.0, 0.95]}
    assert watch.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert watch.percentile(list(range(1, 101)), 0.99) == 99
    assert math.isnan(watch.percentile([], 0.5))


def test_a_small_watch_run_delivers_every_change(tmp_path: Path) -> None:
    args = watch.parser().parse_args(
        [
            *("--watchers", "20", "--workflows", "4", "--clients", "1"),
            *("--seconds", "1.5", "--rate", "4", "--ttl-ms", "300", "--out", str(tmp_path / "r")),
        ]
    )
    figures = watch.run(args)
    assert figures.failures == 0 and figures.idle_failures == 0
    assert figures.changes > 0
    assert figures.deliveries.delivered == figures.deliveries.expected == 5 * figures.changes
    assert all(c > 0 for counts in figures.calls.values() for c in counts)
    assert figures.section()[0] == watch.HEADING
