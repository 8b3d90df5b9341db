"""``status-aggregator watch``: follow one workflow's status as it changes.

From a gateway (its event stream, reconnecting with ``Last-Event-ID`` after a
drop) or from the participants directly (``StatusAggregator.watch``). A line
per change, a live table on a terminal, or JSON lines; it ends with exit code 0
when the workflow reaches a final status.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from contracts import WorkflowStatus

from ._aggregator import StatusAggregator
from ._cli import CliError, gateway_request, refusal, status_view
from ._merge import Disposition
from ._settings import Settings

# A client's own bound on a silent stream: the gateway sends a heartbeat every 15 s
# by default, so a minute without a byte is a stream gone bad.
SILENCE_S = 60.0
RECONNECT_S = (0.5, 30.0)  # first and longest wait before reconnecting


class Show(Protocol):
    def __call__(self, status: WorkflowStatus, final: bool) -> None: ...


def line_of(status: WorkflowStatus, final: bool) -> str:
    """One change as one line: when, the status, and each part's state and freshness."""
    when = status.generated_at.astimezone(UTC).strftime("%H:%M:%S")
    parts = []
    for name, part in status.participants.items():
        if part.source is None:
            error = part.error.detail if part.error else part.outcome
            parts.append(f"{name} missing: {error}")
            continue
        state = part.state or part.outcome
        age = f" {(part.age_ms or 0) / 1000:.0f}s" if part.source == "stale" else ""
        parts.append(f"{name} {state} ({part.source}{age})")
    anomalies = "".join(
        f"; anomaly {a.code}{'' if a.confirmed else ' (unconfirmed)'}" for a in status.anomalies
    )
    complete = "complete" if status.complete else "incomplete"
    end = "; final" if final else ""
    return (
        f"{when} {status.workflow_id} {status.status} ({complete}): "
        f"{', '.join(parts)}{anomalies}{end}"
    )


async def from_gateway(
    base_url: str, workflow_id: str, api_key: str | None
) -> AsyncIterator[tuple[WorkflowStatus, bool]]:
    """The statuses a gateway's event stream sends, reconnecting after a drop."""
    url, headers = gateway_request(base_url, workflow_id, "events", api_key)
    last_id: str | None = None
    wait = RECONNECT_S[0]
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=SILENCE_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            asked = {**headers, **({"Last-Event-ID": last_id} if last_id else {})}
            try:
                async with session.get(url, headers=asked) as response:
                    if response.status == 204:  # we had the final status already
                        return
                    if response.status == 503 and last_id is not None:
                        # Overloaded or restarting, once followed: come back later,
                        # backing off, and never sooner than Retry-After says.
                        await asyncio.sleep(max(_retry_after(response), wait))
                        wait = min(wait * 2, RECONNECT_S[1])
                        continue
                    if response.status != 200:
                        raise refusal(response.status, await _payload(response))
                    wait = RECONNECT_S[0]
                    async for kind, event_id, data in _events(response.content):
                        last_id = event_id or last_id
                        yield WorkflowStatus.model_validate_json(data), kind == "final"
                        if kind == "final":
                            return
            except (aiohttp.ClientError, TimeoutError) as exc:
                if last_id is None:  # never reached: say so, rather than wait
                    reason = str(exc) or type(exc).__name__
                    raise CliError(f"cannot read {url}: {reason}", 1) from None
            await asyncio.sleep(wait)  # dropped: reconnect, backing off
            wait = min(wait * 2, RECONNECT_S[1])


def _retry_after(response: aiohttp.ClientResponse) -> float:
    """Retry-After's seconds (a date, or anything else, counts as none), at most the
    longest wait."""
    value = response.headers.get("Retry-After", "")
    return min(int(value), RECONNECT_S[1]) if value.isascii() and value.isdigit() else 0.0


async def _payload(response: aiohttp.ClientResponse) -> object:
    """A refusal's body as JSON, or None."""
    try:
        return await response.json(content_type=None)
    except (aiohttp.ClientError, ValueError):
        return None


async def _events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str | None, str]]:
    """(event, id, data) for each event of a text/event-stream; comments skipped."""
    kind, event_id, data = "message", None, list[str]()
    async for raw in content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield kind, event_id, "\n".join(data)
            kind, event_id, data = "message", None, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)


async def embedded(
    settings: Settings, workflow_id: str
) -> AsyncIterator[tuple[WorkflowStatus, bool]]:
    """The statuses, asking the participants directly; like the gateway, a workflow
    no participant knows is an error (exit code 1)."""
    from .gateway import NOT_FOUND_DETAIL  # the gateway's words, in one place

    async with StatusAggregator(settings) as agg, aclosing(agg.changes(workflow_id)) as changes:
        async for change in changes:
            if change.answer.disposition is Disposition.NOT_FOUND:
                raise CliError(f"{workflow_id}: {NOT_FOUND_DETAIL}", 1)
            yield change.answer.status(), change.final


async def follow(changes: AsyncIterator[tuple[WorkflowStatus, bool]], show: Show) -> None:
    async with aclosing(changes):  # type: ignore[type-var]
        async for status, final in changes:
            show(status, final)


def printer(console: Console, *, as_json: bool) -> Show:
    """A line (or a JSON line) per change, for a pipe or a log."""

    def show(status: WorkflowStatus, final: bool) -> None:
        if as_json:
            print(json.dumps({"final": final, "status": status.model_dump(mode="json")}))
        else:
            console.print(Text(line_of(status, final)), soft_wrap=True)

    return show


class LiveTable:
    """The status as a table, redrawn in place at each change (on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False)

    def __enter__(self) -> LiveTable:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def __call__(self, status: WorkflowStatus, final: bool) -> None:
        since = datetime.now(UTC).strftime("%H:%M:%S")
        footer = "final: nothing more will change" if final else f"watching; last change {since}"
        self._live.update(Group(status_view(status), Text(footer, style="dim")), refresh=True)
