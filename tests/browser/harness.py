"""Headless Debian chromium driving the operator page, against the reference
participants and a real gateway on loopback.

Playwright drives the system's chromium (``make browser`` installs it); its own
browser download needs the internet, so it is never used.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

from participants import Choreography
from tests.gateway.harness import Running, running_gateway
from tests.helpers import settings
from tests.participants.harness import choreography

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",  # root in a container has no user namespace to sandbox with
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# How long a test waits for what the page should come to show: far beyond what it
# takes, so a busy machine fails no test; the two seconds are asked apart.
PATIENCE_MS = 20_000
# Fast enough that every change shows well within two seconds: parts are asked
# again a quarter of a second after they were fetched.
FAST_GATEWAY: dict[str, Any] = {
    "deadline_ms": 800,
    "cache": {"ttl_ms": 250, "terminal_ttl_ms": 250},
}
FAST_PARTICIPANT: dict[str, Any] = {"timeout_ms": 300, "protection": {"breaker_reset_ms": 500}}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no chromium at {CHROMIUM}: `make browser` installs Debian's package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    """A page of its own context (its own storage), and what went wrong in it."""

    page: Page
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions

    def watch(self) -> None:
        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        def uncaught(error: Error) -> None:
            self.errors.append(f"uncaught: {error}")

        self.page.on("console", console)
        self.page.on("pageerror", uncaught)


@asynccontextmanager
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        opened = Tab(await context.new_page())
        opened.watch()
        yield opened
    finally:
        await context.close()


@dataclass
class Stack:
    """The participants, with their state hook and admin endpoint, and the gateway."""

    run: Choreography
    gateway: Running
    admin: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.gateway.url

    async def set_state(self, participant: str, workflow_id: str, state: str) -> None:
        """What the contract kit does: give a participant a record in a state."""
        hook = f"{self.run.base_urls[participant]}/_contract/state"
        body = {"participant": participant, "state": state, "workflow_id": workflow_id}
        async with self.admin.post(hook, json=body) as response:
            assert response.status == 201, await response.text()

    async def dark(self, participant: str, dark: bool) -> None:
        """Make a participant accept requests and never answer them, or answer again."""
        faults = f"{self.run.base_urls[participant]}/_admin/faults"
        async with self.admin.put(faults, json={"dark": dark}) as response:
            assert response.status == 200, await response.text()


@asynccontextmanager
async def stack(*, seed: int = 23, **gateway: Any) -> AsyncIterator[Stack]:
    """``gateway`` adds to the gateway's own section (``ui`` is on)."""
    async with choreography(
        seed=seed, min_delay=0.05, max_delay=0.15, state_hook=True, admin=True
    ) as run:
        config = settings(
            run.urls,
            **FAST_GATEWAY,
            participants={name: {"url": url, **FAST_PARTICIPANT} for name, url in run.urls.items()},
            gateway={"ui": True, **gateway},
        )
        async with running_gateway(config) as running, aiohttp.ClientSession() as admin:
            yield Stack(run, running, admin)


class DemoOutput(io.StringIO):
    """The demo's plain output; ``seen[name]`` resolves with the first match of each
    pattern (its last group), once printed."""

    def __init__(self, patterns: dict[str, re.Pattern[str]]) -> None:
        super().__init__()
        loop = asyncio.get_running_loop()
        self._patterns = patterns
        self.seen: dict[str, asyncio.Future[str]] = {
            name: loop.create_future() for name in patterns
        }

    def write(self, text: str) -> int:
        written = super().write(text)
        for name, pattern in self._patterns.items():
            found = pattern.search(self.getvalue())
            if found and not self.seen[name].done():
                self.seen[name].set_result(found[found.lastindex or 0])
        return written
