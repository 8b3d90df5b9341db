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

from participants import only_workflow

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


def _who(span: SpanRecord) -> str:
    """Where the span happened: the participant's own spans name it (the processes'
    services say the same; in one process they would all say ``demo``); the
    gateway's calls to a participant name the gateway's process."""
    acting = span.attributes.get("participant.name")
    if acting and "http.request.method" not in span.attributes:
        return str(acting)
    return span.service


def _label(span: SpanRecord, origin: float) -> str:
    who = f" [{_who(span)}]" if _who(span) else ""
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
    """The order's history (one trace), then the status requests that asked about it;
    times are from the order's placing (or each request's start, if that is not
    recorded).

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
    origin = min((root.start for root in roots), default=None)
    for root in roots:
        _draw(root, children, root.start, "  ", True, lines, root=True)
    # Status requests: the other traces with spans about this order, each from its
    # root (a status or batch request), with only this order's calls beneath.
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    requests = []
    for trace_id in {s.trace_id for s in mine} - history:
        roots, children = _forest(by_trace[trace_id])
        for root in roots:
            if root.attributes.get(WORKFLOW) not in (None, workflow_id):
                continue
            children[root.span_id] = [
                kid for kid in children.get(root.span_id, [])
                if kid.attributes.get(WORKFLOW) == workflow_id
            ]  # fmt: skip
            if root.attributes.get(WORKFLOW) == workflow_id or children[root.span_id]:
                requests.append((root, children))
    requests.sort(key=lambda request: request[0].start)
    if requests:
        shown = requests
        heading = f"status requests about {workflow_id}: {len(requests)}"
        if len(requests) > 2 * SHOWN_REQUESTS:
            shown = [*requests[:SHOWN_REQUESTS], *requests[-SHOWN_REQUESTS:]]
            heading += f", the first and last {SHOWN_REQUESTS}"
        lines.append(heading)
        for root, children in shown:  # their times from the order's placing, if recorded
            _draw(root, children, origin or root.start, "  ", True, lines, root=True)
    return lines


class Recorder:
    """Records the demo process's spans about one order in memory, and names the
    directory where the participant processes write theirs. Needs the OpenTelemetry
    SDK.

    Example::

        with Recorder(Path("traces"), "order-0001") as recorder:
            ...
            print("\\n".join(tree("order-0001", recorder.spans())))
    """

    def __init__(self, directory: Path, workflow_id: str) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.directory = directory
        self._memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "demo"}))
        # Only what the order's tree needs: memory does not grow with the run.
        provider.add_span_processor(only_workflow(self._memory, workflow_id))
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
