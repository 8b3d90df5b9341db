"""How the demo shows what it sees: a live table in a terminal, plain lines otherwise."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from contracts import ParticipantStatus

from ._tracker import Tracker

PARTICIPANTS = ("payment", "inventory", "shipping")
SOURCE_STYLE = {"live": "green", "cache": "cyan", "stale": "yellow"}
STATUS_STYLE = {
    "delivered": "bold green",
    "compensated": "bold magenta",
    "payment_failed": "bold red",
    "compensating": "magenta",
}


def part_text(part: ParticipantStatus | None) -> Text:
    """One participant's part: state, where it came from and how old, or why it is missing."""
    if part is None:
        return Text("-", style="dim")
    age = "" if part.age_ms is None else f" {part.age_ms / 1000:.1f}s"
    if part.state is not None and part.source is not None:
        text = Text(part.state)
        text.append(f" {part.source}{age}", style=SOURCE_STYLE[part.source])
        if part.source == "stale" and part.error is not None:
            text.append(f" ({part.error.kind})", style="yellow")
        return text
    if part.outcome == "not_found":
        return Text(f"no record ({part.source}{age})", style="dim")
    kind = part.error.kind if part.error is not None else part.outcome
    return Text(f"missing: {kind}", style="bold red")


def part_plain(part: ParticipantStatus | None) -> str:
    return part_text(part).plain


def table(tracker: Tracker, rows: int) -> Table:
    grid = Table(expand=True, show_edge=False, pad_edge=False)
    grid.add_column("workflow", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    for name in PARTICIPANTS:
        grid.add_column(name)
    grid.add_column("anomalies")
    for workflow_id in reversed(tracker.order[-rows:]):
        status = tracker.status_of(workflow_id) or "asking..."
        workflow = tracker.workflow(workflow_id)
        parts = workflow.participants if workflow is not None else {}
        anomalies = ", ".join(a.code for a in workflow.anomalies) if workflow else ""
        flag = "" if workflow is None or workflow.complete else " *"
        grid.add_row(
            workflow_id,
            Text(status + flag, style=STATUS_STYLE.get(status, "")),
            *(part_text(parts.get(name)) for name in PARTICIPANTS),
            Text(anomalies, style="yellow"),
        )
    return grid


def screen(
    tracker: Tracker,
    *,
    gateway_url: str,
    outage: str | None,
    footer: str,
    rows: int = 14,
) -> RenderableType:
    example = tracker.order[-1] if tracker.order else "order-0001"
    header = Text.assemble(
        ("Choreography demo", "bold"),
        f"  gateway {gateway_url}\n",
        ("try: ", "dim"),
        f"curl -s {gateway_url}/workflows/{example}/status",
        ("   or: ", "dim"),
        f"status-aggregator status {example} --gateway {gateway_url}",
    )
    notice = Text(
        f"outage: {outage}" if outage else "all participants answering",
        style="bold yellow" if outage else "green",
    )
    legend = Text(
        "parts: state + live / cache / stale with age, or why missing;  * incomplete", style="dim"
    )
    return Group(header, notice, table(tracker, rows), Text(footer), legend)


def plain_line(tracker: Tracker, workflow_id: str) -> str:
    workflow = tracker.workflow(workflow_id)
    parts = workflow.participants if workflow is not None else {}
    shown = " ".join(f"{name}={part_plain(parts.get(name))}" for name in PARTICIPANTS)
    anomalies = " ".join(f"anomaly={a.code}" for a in workflow.anomalies) if workflow else ""
    status = tracker.status_of(workflow_id) or "?"
    stamp = datetime.now().strftime("%H:%M:%S")
    return f"{stamp} {workflow_id} {status:<18} {shown} {anomalies}".rstrip()
