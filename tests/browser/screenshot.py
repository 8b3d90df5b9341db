"""Take the README's picture of the operator page from a real demo run.

``make screenshot`` (``python -m tests.browser.screenshot docs/ui.png``): the demo
runs in this process, with its first outage early; once a participant has gone
dark, the page shows a recent order whose part from it stands in, stale.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import expect

from demo import Demo, Options
from tests.browser.harness import PATIENCE_MS, DemoOutput, chromium, tab

LINES = {
    "page": re.compile(r"^page: (\S+)$", re.M),
    "outage": re.compile(r"^outage: .* goes dark", re.M),
}


async def shoot(target: Path) -> None:
    out = DemoOutput(LINES)
    options = Options(
        gateway_port=0,
        payment_port=0,
        inventory_port=0,
        shipping_port=0,
        outage_every=12.0,  # by then, orders at every step
        outage_for=8.0,
    )
    demo = Demo(options, out, live=False)
    running = asyncio.create_task(demo.run())
    try:
        url = await asyncio.wait_for(out.seen["page"], PATIENCE_MS / 1000)
        await asyncio.wait_for(out.seen["outage"], PATIENCE_MS / 1000)
        async with chromium() as browser, tab(browser) as opened:
            page = opened.page
            await page.goto(url)
            listed = page.get_by_role("region", name="Orders in flight").get_by_role("listitem")
            await expect(listed.nth(5)).to_be_visible(timeout=PATIENCE_MS)
            # An order a few steps along: its part from the dark participant is stale.
            along = listed.filter(has_text=re.compile("in_transit|shipment_scheduled"))
            chosen = along.first if await along.count() else listed.nth(3)
            await chosen.get_by_role("link").click()
            try:
                await expect(page.locator(".source", has_text="stale")).to_be_visible(timeout=4_000)
            except PlaywrightTimeout:
                print("no stale part on screen this time", file=sys.stderr)
            await page.screenshot(path=str(target))
            assert opened.errors == [], opened.errors
    finally:
        demo.stop.set()
        await running


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(target))
    print(f"{target}: {target.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
