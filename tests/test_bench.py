"""The benchmark reads wrk's report correctly (the runs themselves are `make bench`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).parents[1] / "bench" / "run.py"
spec = importlib.util.spec_from_file_location("bench_run", PATH)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_run"] = bench
spec.loader.exec_module(bench)

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
