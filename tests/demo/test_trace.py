"""The demo's ``--trace`` tree, drawn from spans of several processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from demo._trace import SHOWN_REQUESTS, SpanRecord, read_lines, tree


def span(
    name: str,
    span_id: str,
    parent: str | None,
    start: float,
    ms: float,
    *,
    trace_id: str = "t1",
    service: str = "payment",
    **attributes: Any,
) -> SpanRecord:
    return SpanRecord(
        name, service, trace_id, span_id, parent, start, start + ms / 1000, attributes
    )


ORDER = {"workflow.id": "order-1"}
HISTORY = [
    span("place order", "a", None, 100.0, 1.0, service="demo", **ORDER),
    span("publish OrderPlaced", "b", "a", 100.0002, 0.5, service="demo", **ORDER),
    span("process OrderPlaced", "c", "b", 100.002, 2.0, **ORDER),
    span("payment settle", "e", "c", 101.5, 3.0, **ORDER),
    span("payment authorize", "d", "c", 100.8, 1.5, **ORDER),
]


def test_the_history_is_drawn_in_time_order_with_offsets_and_durations() -> None:
    assert tree("order-1", HISTORY) == [
        "trace of order-1",
        "  place order [demo]  +0 ms, 1.0 ms",
        "  └─ publish OrderPlaced [demo]  +0 ms, 0.5 ms",
        "     └─ process OrderPlaced [payment]  +2 ms, 2.0 ms",
        "        ├─ payment authorize [payment]  +800 ms, 1.5 ms",
        "        └─ payment settle [payment]  +1500 ms, 3.0 ms",
    ]


def test_status_requests_follow_with_the_calls_they_made_and_only_a_few_are_shown() -> None:
    requests = []
    for n in range(10):
        trace_id, at = f"r{n}", 200.0 + n
        batch = {"workflow.id": "order-2"}
        requests += [
            span("POST /workflows/status:batch", f"s{n}", None, at, 5.0,
                 trace_id=trace_id, service="demo"),
            span("GET /payments/{workflow_id}", f"c{n}", f"s{n}", at + 0.001, 2.0,
                 trace_id=trace_id, service="demo", **ORDER),
            span("GET payment query", f"q{n}", f"c{n}", at + 0.002, 0.5,
                 trace_id=trace_id, **ORDER),
            span("GET /payments/{workflow_id}", f"o{n}", f"s{n}", at + 0.001, 2.0,
                 trace_id=trace_id, service="demo", **batch),
        ]  # fmt: skip
    other = span("place order", "z", None, 300.0, 1.0, trace_id="t9", workflow_id="order-2")
    lines = tree("order-1", [*HISTORY, *requests, other])
    start = lines.index(f"status requests about order-1: 10, the first and last {SHOWN_REQUESTS}")
    shown = lines[start + 1 :]
    assert len(shown) == 3 * 2 * SHOWN_REQUESTS
    assert shown[:3] == [
        "  POST /workflows/status:batch [demo]  +100000 ms, 5.0 ms",
        "  └─ GET /payments/{workflow_id} [demo]  +100001 ms, 2.0 ms",
        "     └─ GET payment query [payment]  +100002 ms, 0.5 ms",
    ]
    assert "order-2" not in "\n".join(lines)


def test_an_order_without_spans_says_so() -> None:
    assert tree("order-7", HISTORY) == ["no spans recorded for order-7"]


def test_a_line_cut_short_by_a_killed_process_is_skipped(tmp_path: Path) -> None:
    whole = {
        "name": "process OrderPlaced",
        "context": {"trace_id": "0x1", "span_id": "0x2"},
        "parent_id": "0x3",
        "start_time": "2026-12-06T10:00:00.000000Z",
        "end_time": "2026-12-06T10:00:00.002000Z",
        "attributes": ORDER,
        "status": {"status_code": "UNSET"},
        "resource": {"attributes": {"service.name": "payment"}, "schema_url": ""},
    }
    path = tmp_path / "payment.jsonl"
    path.write_text(json.dumps(whole) + "\n" + json.dumps(whole)[:40])
    (read,) = read_lines([path, tmp_path / "missing.jsonl"])
    assert (read.name, read.service, read.parent_id, round(read.ms, 3)) == (
        "process OrderPlaced",
        "payment",
        "0x3",
        2.0,
    )
