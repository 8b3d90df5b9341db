from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from tests.browser.harness import Stack, Tab, chromium, stack, tab


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def running() -> AsyncIterator[Stack]:
    async with stack() as started:
        yield started


@pytest.fixture
async def page_tab(browser: Browser, running: Stack) -> AsyncIterator[Tab]:
    """A fresh tab, closed before the gateway it reads from."""
    async with tab(browser) as opened:
        yield opened
