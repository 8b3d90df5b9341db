"""How the page reads the events stream: its parser, and what it does when the
stream drops or is refused. The stream is played by Playwright's request routing
(each answer chosen by the test), the statuses in it are the real gateway's."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.async_api import Route, expect

from tests.browser.harness import PATIENCE_MS, Stack, Tab

EVENTS = re.compile(r"/workflows/[^/]+/events$")


async def real_status(running: Stack, workflow_id: str) -> str:
    for participant, state in (("payment", "captured"), ("inventory", "reserved")):
        await running.set_state(participant, workflow_id, state)
    async with running.gateway.client.get(f"/workflows/{workflow_id}/status") as response:
        assert response.status == 200
        return await response.text()


def event(kind: str, tag: str, data: str) -> str:
    return f'event: {kind}\nid: W/"{tag}"\ndata: {data}\n\n'


async def test_the_parser_reads_events_as_the_html_standard_does(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    await page.goto(f"{running.url}/ui")
    chunks = [
        "retry: 250\r",  # CRLF split across two chunks: one line, not two
        "\n: heartbeat\r\n\r\n",
        'event: status\nid: W/"a"\ndata: {"n":\n',
        "data: 1}\n\n",  # two data lines joined by a newline
        'id: W/"b"\ndata:no-space\n\n',  # no event field: a message
        "event: status\nid: bad\0id\ndata: x\n\n",  # an id with NUL is ignored
        "data: cut off at the end",  # never completed by a blank line: not dispatched
    ]
    got: dict[str, Any] = await page.evaluate(
        """async (chunks) => {
            const { EventStreamParser } = await import("./ui/sse.js");
            const events = [];
            const parser = new EventStreamParser((e) => events.push(e));
            for (const chunk of chunks) parser.push(chunk);
            return { events, retry: parser.retry, lastEventId: parser.lastEventId };
        }""",
        chunks,
    )
    assert got == {
        "events": [
            {"type": "status", "data": '{"n":\n1}', "id": 'W/"a"'},
            {"type": "message", "data": "no-space", "id": 'W/"b"'},
            {"type": "status", "data": "x", "id": 'W/"b"'},
        ],
        "retry": 250,
        "lastEventId": 'W/"b"',
    }
    assert page_tab.errors == []


async def test_a_dropped_stream_says_so_and_resumes_from_the_last_event(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    status = await real_status(running, "order-7101")
    asked: list[dict[str, str]] = []

    async def play(route: Route) -> None:
        asked.append(route.request.headers)
        if len(asked) == 1:  # one status, then the connection ends: a drop
            body = "retry: 300\n\n" + event("status", "first", status)
        else:
            body = event("final", "last", status)
        await route.fulfill(status=200, content_type="text/event-stream", body=body)

    await page.route(EVENTS, play)
    await page.goto(f"{running.url}/ui#order-7101")
    line = page.get_by_role("status")
    await expect(line).to_have_text(
        re.compile(r"^stream down, retrying in \d+ s \(the stream was cut\)$"),
        timeout=PATIENCE_MS,
    )
    await expect(page.locator("#status")).to_have_text("stock_reserved")
    await expect(line).to_have_text(
        "final: order-7101 is stock_reserved; the stream has ended", timeout=PATIENCE_MS
    )
    assert "last-event-id" not in asked[0]
    assert asked[1]["last-event-id"] == 'W/"first"'
    assert asked[0]["accept"] == "text/event-stream"
    assert len(asked) == 2  # no reconnection after final


async def test_an_overloaded_gateway_is_retried_after_its_retry_after(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    status = await real_status(running, "order-7102")
    asked: list[str] = []
    overloaded = {
        "type": "urn:status-aggregator:problem:overloaded",
        "title": "Too many requests in flight",
        "status": 503,
        "detail": "more than 1000 watchers of this workflow",
    }

    async def play(route: Route) -> None:
        asked.append(route.request.url)
        if len(asked) == 1:
            await route.fulfill(
                status=503,
                content_type="application/problem+json",
                headers={"Retry-After": "1"},
                body=json.dumps(overloaded),
            )
        else:
            body = "retry: 300\n\n" + event("status", "x", status)
            await route.fulfill(status=200, content_type="text/event-stream", body=body)

    await page.route(EVENTS, play)
    await page.goto(f"{running.url}/ui#order-7102")
    await expect(page.get_by_role("status")).to_have_text(
        re.compile(r"^stream down, retrying in [12] s \(Too many requests in flight\)$"),
        timeout=PATIENCE_MS,
    )
    await expect(page.locator("#status")).to_have_text("stock_reserved", timeout=PATIENCE_MS)


async def test_a_refusal_is_shown_and_not_asked_again(page_tab: Tab, running: Stack) -> None:
    page = page_tab.page
    asked: list[str] = []
    invalid = {
        "type": "urn:status-aggregator:problem:invalid-workflow-id",
        "title": "Invalid workflow id",
        "status": 400,
        "detail": "workflow id 'x' is not allowed",
    }

    async def play(route: Route) -> None:
        asked.append(route.request.url)
        await route.fulfill(
            status=400, content_type="application/problem+json", body=json.dumps(invalid)
        )

    await page.route(EVENTS, play)
    await page.goto(f"{running.url}/ui#x")
    await expect(page.locator("#problem-detail")).to_have_text(
        "workflow id 'x' is not allowed", timeout=PATIENCE_MS
    )
    # A retry announces itself at once ("stream down, retrying in ..."): this line
    # staying is the page not asking again.
    await expect(page.get_by_role("status")).to_have_text("not watching x: Invalid workflow id")
    assert asked == [f"{running.url}/workflows/x/events"]


async def test_a_stale_parts_age_counts_on_between_events(page_tab: Tab, running: Stack) -> None:
    page = page_tab.page
    status = json.loads(await real_status(running, "order-7103"))
    payment = status["participants"]["payment"]
    status["complete"] = False
    status["participants"]["payment"] = {
        **payment,
        "outcome": "unavailable",
        "source": "stale",
        "age_ms": 4_400,
        "error": {"kind": "timeout", "detail": "no answer within 300 ms"},
    }
    status["participants"]["inventory"] = {
        **status["participants"]["inventory"],
        "outcome": "unavailable",
        "source": None,
        "state": None,
        "version": None,
        "view": None,
        "age_ms": None,
        "error": {"kind": "circuit_open", "detail": "circuit open after 5 consecutive failures"},
    }

    served: list[str] = []

    async def play(route: Route) -> None:
        # One answer; the reconnection after it is left waiting, as a stream where
        # nothing changes would be: the page gets no new event.
        if not served:
            served.append(route.request.url)
            body = event("status", "s", json.dumps(status)) + ": heartbeat\n\n"
            await route.fulfill(status=200, content_type="text/event-stream", body=body)

    await page.route(EVENTS, play)
    await page.goto(f"{running.url}/ui#order-7103")
    source = page.locator('.card[data-participant="payment"] .source')
    await expect(source).to_have_text("stale 4 s", timeout=PATIENCE_MS)
    await expect(source).to_have_text(re.compile(r"^stale [5-9] s$"), timeout=PATIENCE_MS)
    inventory = page.locator('.card[data-participant="inventory"]')
    await expect(inventory.locator(".source")).to_have_text("missing: circuit open")
    await expect(inventory.locator(".error")).to_have_text(
        "Error: circuit open: circuit open after 5 consecutive failures"
    )


async def test_a_204_after_a_drop_is_the_end_not_a_cut(page_tab: Tab, running: Stack) -> None:
    """The gateway answers 204 to a reconnect naming the final event: the page stops."""
    page = page_tab.page
    status = await real_status(running, "order-7103")
    asked: list[str] = []

    async def play(route: Route) -> None:
        asked.append(route.request.url)
        if len(asked) == 1:  # the final event, then the connection ends before the page saw it end
            body = "retry: 300\n\n" + event("status", "last", status)
            await route.fulfill(status=200, content_type="text/event-stream", body=body)
        else:
            await route.fulfill(status=204)

    await page.route(EVENTS, play)
    await page.goto(f"{running.url}/ui#order-7103")
    await expect(page.get_by_role("status")).to_have_text(
        "final: order-7103 is over; nothing more will change", timeout=PATIENCE_MS
    )
    assert len(asked) == 2
