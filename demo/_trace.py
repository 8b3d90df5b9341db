"""One order's spans as a tree in the terminal: ``status-aggregator demo --trace ID``.

The demo's own process (the gateway, the shop front) records its spans in memory;
each participant process writes its spans as JSON lines to a file the demo
reads at the end. The order's history is one trace, rooted at ``place order``:
every handler and step is a child of the span that published its event. The
gateway's status requests are traces of their own; the calls they made for the
order are shown after it, each with the participant's span beneath.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

SHOWN_REQUESTS = 3  # status requests shown from the start and from the end
WORKFLOW = "workflow.id"


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """What the tree needs of a span, from any process."""

    name: str
    service: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start: float  # epoch seconds
    end: float
    attributes: dict[str, Any]
    error: bool = False

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpanRecord:
        """From the SDK's ``ReadableSpan.to_json()``."""

        def seconds(stamp: str) -> float:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

        resource = data.get("resource", {}).get("attributes", {})
        return cls(
            name=data["name"],
            service=str(resource.get("service.name", "")),
            trace_id=data["context"]["trace_id"],
            span_id=data["context"]["span_id"],
            parent_id=data.get("parent_id"),
            start=seconds(data["start_time"]),
            end=seconds(data["end_time"]),
            attributes=dict(data.get("attributes") or {}),
            error=data.get("status", {}).get("status_code") == "ERROR",
        )


def read_lines(paths: Iterable[Path]) -> list[SpanRecord]:
    """Spans written as JSON lines; a line cut short by a killed process is skipped."""
    spans = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                spans.append(SpanRecord.from_json(json.loads(line)))
            except (ValueError, KeyError):
                continue
    return spans


def _label(span: SpanRecord, origin: float) -> str:
    who = f" [{span.service}]" if span.service else ""
    flag = "  ERROR" if span.error else ""
    return f"{span.name}{who}  +{(span.start - origin) * 1000:.0f} ms, {span.ms:.1f} ms{flag}"


def _draw(
    span: SpanRecord,
    children: dict[str, list[SpanRecord]],
    origin: float,
    prefix: str,
    last: bool,
    lines: list[str],
    root: bool = False,
) -> None:
    if root:
        lines.append(prefix + _label(span, origin))
        below = prefix
    else:
        lines.append(prefix + ("└─ " if last else "├─ ") + _label(span, origin))
        below = prefix + ("   " if last else "│  ")
    kids = sorted(children.get(span.span_id, []), key=lambda s: s.start)
    for i, kid in enumerate(kids):
        _draw(kid, children, origin, below, i == len(kids) - 1, lines)


def _forest(spans: Sequence[SpanRecord]) -> tuple[list[SpanRecord], dict[str, list[SpanRecord]]]:
    ids = {span.span_id for span in spans}
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    roots = []
    for span in spans:
        if span.parent_id in ids:
            children[span.parent_id].append(span)
        else:
            roots.append(span)
    return sorted(roots, key=lambda s: s.start), children


def tree(workflow_id: str, spans: Sequence[SpanRecord]) -> list[str]:
    """The order's history (one trace), then the status requests that asked about it.

    >>> tree("order-9", [])
    ['no spans recorded for order-9']
    """
    mine = [s for s in spans if s.attributes.get(WORKFLOW) == workflow_id]
    history = {s.trace_id for s in mine if s.name == "place order"}
    if not mine:
        return [f"no spans recorded for {workflow_id}"]
    lines = [f"trace of {workflow_id}"]
    chain = [s for s in spans if s.trace_id in history]
    roots, children = _forest(chain)
    for root in roots:
        _draw(root, children, root.start, "  ", True, lines, root=True)
    # Status requests: the spans about this order in other traces, with what they caused.
    asked = sorted(
        (
            s
            for s in mine
            if s.trace_id not in history and s.parent_id not in {m.span_id for m in mine}
        ),
        key=lambda s: s.start,
    )
    if asked:
        shown = (
            asked
            if len(asked) <= 2 * SHOWN_REQUESTS
            else [
                *asked[:SHOWN_REQUESTS],
                *asked[-SHOWN_REQUESTS:],
            ]
        )
        lines.append(
            f"status requests about {workflow_id}: {len(asked)}"
            + ("" if shown is asked else f", the first and last {SHOWN_REQUESTS}")
        )
        by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
        for span in spans:
            by_trace[span.trace_id].append(span)
        for top in shown:
            _, kids = _forest(by_trace[top.trace_id])
            _draw(top, kids, top.start, "  ", True, lines, root=True)
    return lines


class Recorder:
    """Records the demo process's spans in memory, and names the directory where the
    participant processes write theirs. Needs the OpenTelemetry SDK.

    Example::

        with Recorder(Path("traces")) as recorder:
            ...
            print("\\n".join(tree("order-0001", recorder.spans())))
    """

    def __init__(self, directory: Path) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.directory = directory
        self._memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "demo"}))
        provider.add_span_processor(SimpleSpanProcessor(self._memory))
        trace.set_tracer_provider(provider)
        self._provider = provider

    def spans(self) -> list[SpanRecord]:
        here = [
            SpanRecord.from_json(json.loads(s.to_json())) for s in self._memory.get_finished_spans()
        ]
        return here + read_lines(sorted(self.directory.glob("*.jsonl")))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._provider.shutdown()
