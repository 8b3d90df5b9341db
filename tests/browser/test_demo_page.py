"""The demo turns the page on, prints its address, and feeds it the orders in flight."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import Browser, expect

from demo import Demo, Options
from tests.browser.harness import PATIENCE_MS, DemoOutput, tab

PAGE_LINE = re.compile(r"^page: (\S+)$", re.M)


async def test_the_demo_page_lists_the_orders_in_flight_and_opens_one(browser: Browser) -> None:
    out = DemoOutput({"page": PAGE_LINE})
    options = Options(
        gateway_port=0,
        payment_port=0,
        inventory_port=0,
        shipping_port=0,
        min_delay=0.05,
        max_delay=0.15,
        order_every=0.2,
        outage_every=600.0,  # none while the test looks
        refresh_every=0.2,
    )
    demo = Demo(options, out, live=False)
    running = asyncio.create_task(demo.run())
    try:
        url = await asyncio.wait_for(out.seen["page"], PATIENCE_MS / 1000)
        assert url.endswith("/ui?ids_url=/demo/orders")
        async with tab(browser) as opened:
            page = opened.page
            await page.goto(url)
            listed = page.get_by_role("region", name="Orders in flight")
            await expect(listed.get_by_role("link").nth(2)).to_be_visible(timeout=PATIENCE_MS)
            # An order some participant knows: the demo loses an event now and then,
            # and an order whose first event was lost is known to nobody.
            known = listed.get_by_role("listitem").filter(
                has_not_text=re.compile("not found|could not be read", re.IGNORECASE)
            )
            workflow_id = await known.first.get_by_role("link").text_content()
            assert workflow_id is not None and workflow_id.startswith("order-")
            # By its name: the list is refreshed every few seconds, and moves on.
            await listed.get_by_role("link", name=workflow_id, exact=True).click()
            await expect(page.locator("#workflow-heading")).to_have_text(
                workflow_id, timeout=PATIENCE_MS
            )
            await expect(page.locator(".card")).to_have_count(3)
            assert opened.errors == []
    finally:
        demo.stop.set()
        await running
