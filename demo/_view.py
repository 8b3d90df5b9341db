"""How the demo shows what it sees: a live table in a terminal, plain lines otherwise."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from contracts import ParticipantStatus, WorkflowStatus

from ._tracker import Tracker

RECENT_ORDERS = 14  # the orders the live table shows, the latest first

PARTICIPANTS = ("payment", "inventory", "shipping")
SOURCE_STYLE = {"live": "green", "cache": "cyan", "stale": "yellow"}
STATUS_STYLE = {
    "delivered": "bold green",
    "compensated": "bold magenta",
    "payment_failed": "bold red",
    "compensating": "magenta",
}
VERDICT_STYLE = {"staged": "green", "false": "bold red", "unconfirmed": "dim yellow"}


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


def held_for(workflow: WorkflowStatus) -> str:
    """How long the workflow has had its status, by the participants' clocks: ' 3.2s'."""
    if workflow.since is None:
        return ""
    seconds = (workflow.generated_at - workflow.since).total_seconds()
    return f" {max(seconds, 0.0):.1f}s"


def timeline_text(workflow: WorkflowStatus) -> str:
    """When each part took its state: the first as a time of day, the others after it."""
    steps = []
    previous: datetime | None = None
    for step in workflow.timeline:
        if previous is None:
            when = step.at.astimezone().strftime("%H:%M:%S.%f")[:-5]
        else:
            when = f"+{(step.at - previous).total_seconds():.1f}s"
        steps.append(f"{step.participant} {step.state} {when}")
        previous = step.at
    return " -> ".join(steps)


def verdicts(tracker: Tracker, workflow_id: str) -> list[tuple[str, str]]:
    """Each anomaly of the latest answer, with what the demo knows of it."""
    workflow = tracker.workflow(workflow_id)
    return [
        (a.code, tracker.verdict(workflow_id, a.code, a.confirmed))
        for a in (workflow.anomalies if workflow is not None else ())
    ]


def anomalies_text(tracker: Tracker, workflow_id: str) -> Text:
    """The anomalies raised, each with what the demo knows of it; a staged one not raised
    yet, dimmed."""
    text = Text()
    raised = set()
    for code, verdict in verdicts(tracker, workflow_id):
        raised.add(code)
        text.append(", " if text else "")
        text.append(f"{code} ({verdict})", style=VERDICT_STYLE[verdict])
    expected = tracker.expected.get(workflow_id)
    if expected is not None and expected not in raised and tracker.struck(workflow_id):
        text.append(", " if text else "")
        text.append(f"(staged: {expected})", style="dim")
    return text


def with_anomalies(tracker: Tracker) -> list[str]:
    """The orders whose latest answer raises an anomaly, in the order they were placed."""
    return [
        wid
        for wid in tracker.order
        if (workflow := tracker.workflow(wid)) is not None and workflow.anomalies
    ]


def pinned(tracker: Tracker, recent: list[str], most: int) -> list[str]:
    """The latest older orders worth keeping in view: with an anomaly, or with a staged
    fault (whose anomaly an outage may hide for a while)."""
    raised = set(with_anomalies(tracker))
    older = [
        wid for wid in tracker.order[: -len(recent) or None] if wid in raised or tracker.struck(wid)
    ]
    return older[-most:] if most else []


def table(tracker: Tracker, rows: int, most: int = 5) -> Table:
    """The most recent orders, newest first; under them the latest few older orders
    with an anomaly or a staged fault, so a stuck order stays in view."""
    grid = Table(expand=True, show_edge=False, pad_edge=False)
    grid.add_column("workflow", no_wrap=True)
    grid.add_column("status, for", no_wrap=True)
    for name in PARTICIPANTS:
        grid.add_column(name)
    grid.add_column("anomalies")
    recent = tracker.order[-rows:]
    older = pinned(tracker, recent, most)
    for workflow_id in [*reversed(recent), *reversed(older)]:
        status = tracker.status_of(workflow_id) or "asking..."
        workflow = tracker.workflow(workflow_id)
        parts = workflow.participants if workflow is not None else {}
        held = held_for(workflow) if workflow is not None else ""
        flag = "" if workflow is None or workflow.complete else " *"
        grid.add_row(
            workflow_id,
            Text(status + held + flag, style=STATUS_STYLE.get(status, "")),
            *(part_text(parts.get(name)) for name in PARTICIPANTS),
            anomalies_text(tracker, workflow_id),
            end_section=bool(older) and workflow_id == recent[0],
        )
    return grid


def spotlight(tracker: Tracker) -> str | None:
    """The order whose timeline is shown: the latest with an anomaly, else the newest
    with a part to show."""
    timed = [
        wid for wid in tracker.order if (w := tracker.workflow(wid)) is not None and w.timeline
    ]
    shown = set(timed)
    chosen = [wid for wid in with_anomalies(tracker) if wid in shown] or timed
    return chosen[-1] if chosen else None


def screen(
    tracker: Tracker,
    *,
    gateway_url: str,
    page_url: str,
    outage: str | None,
    footer: str,
    rows: int = RECENT_ORDERS,
) -> RenderableType:
    example = tracker.order[-1] if tracker.order else "order-0001"
    header = Text.assemble(
        ("Choreography demo", "bold"),
        f"  gateway {gateway_url}",
        ("   page: ", "dim"),
        f"{page_url}\n",
        ("try: ", "dim"),
        f"curl -s {gateway_url}/workflows/{example}/status",
        ("   or: ", "dim"),
        f"status-aggregator status {example} --gateway {gateway_url}",
    )
    notice = Text(
        f"outage: {outage}" if outage else "all participants answering",
        style="bold yellow" if outage else "green",
    )
    chosen = spotlight(tracker)
    workflow = tracker.workflow(chosen) if chosen is not None else None
    timeline = Text(
        f"timeline of {chosen}: {timeline_text(workflow)}"
        if chosen is not None and workflow is not None
        else "timeline: no part to show yet",
        style="cyan",
    )
    legend = Text(
        "status, for: how long since it changed;  parts: state + live / cache / stale with "
        "age, or why missing;  * incomplete\nanomalies: staged (the demo caused it), false "
        "(raised, confirmed, not staged), unconfirmed (a participant could not be asked "
        "again: maybe an outage's artefact)",
        style="dim",
    )
    return Group(header, notice, table(tracker, rows), timeline, Text(footer), legend)


def plain_line(tracker: Tracker, workflow_id: str) -> str:
    workflow = tracker.workflow(workflow_id)
    parts = workflow.participants if workflow is not None else {}
    shown = " ".join(f"{name}={part_plain(parts.get(name))}" for name in PARTICIPANTS)
    anomalies = " ".join(
        f"anomaly={code}({verdict})" for code, verdict in verdicts(tracker, workflow_id)
    )
    status = tracker.status_of(workflow_id) or "?"
    held = f"for{held_for(workflow)}" if workflow is not None and workflow.since else ""
    stamp = datetime.now().strftime("%H:%M:%S")
    return f"{stamp} {workflow_id} {status:<18} {held:<8} {shown} {anomalies}".rstrip()
