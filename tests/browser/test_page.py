"""The operator page in headless chromium, against real participants and a real
gateway: what a person sees, typing an id or clicking one."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.async_api import Browser, Route, expect
from yarl import URL

from contracts import Problem
from tests.browser.harness import PATIENCE_MS, Stack, Tab, stack, tab

# Settings's states, one step before the end: nothing final, so the stream stays open.
SCHEDULED = {"payment": "captured", "inventory": "reserved", "shipping": "scheduled"}
FRESH = re.compile(r"^(live|cache)$")
STALE = re.compile(r"^stale \d+ s$")


async def given(running: Stack, workflow_id: str, states: dict[str, str]) -> None:
    for participant, state in states.items():
        await running.set_state(participant, workflow_id, state)


async def test_the_page_loads_without_console_errors(page_tab: Tab, running: Stack) -> None:
    page = page_tab.page
    await page.goto(f"{running.url}/ui")
    await expect(page).to_have_title("Workflow status")
    await expect(page.get_by_role("status")).to_have_text("Type or paste a workflow id.")
    await expect(page.get_by_label("Workflow id")).to_be_focused()
    assert page_tab.errors == []


async def test_a_demo_order_shows_its_status_and_a_card_per_participant(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    workflow_id = await running.run.place_order()
    expected = running.run.config.chance.expected_outcome(workflow_id)
    await page.goto(f"{running.url}/ui")
    await page.get_by_label("Workflow id").fill(workflow_id)
    await page.keyboard.press("Enter")

    await expect(page.locator("#workflow-heading")).to_have_text(workflow_id)
    # The order goes through its steps on the page, and ends where its seed says.
    await expect(page.locator("#status")).to_have_text(expected, timeout=PATIENCE_MS)
    await expect(page.get_by_role("status")).to_have_text(
        f"final: {workflow_id} is {expected}; the stream has ended", timeout=PATIENCE_MS
    )
    cards = page.locator(".card")
    await expect(cards).to_have_count(3)
    for name in ("payment", "inventory", "shipping"):
        card = page.locator(f'.card[data-participant="{name}"]')
        await expect(card.locator("h4")).to_have_text(name)
        await expect(card.locator(".source")).to_have_text(FRESH)
        await expect(card.locator(".outcome")).to_have_text(re.compile(r"^(ok|no record)$"))
    await expect(page.locator("#complete")).to_have_text("yes")
    await expect(page.get_by_role("navigation", name="Recently viewed")).to_contain_text(
        workflow_id
    )
    assert page_tab.errors == []


async def test_a_change_shows_within_two_seconds_without_a_reload(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    await given(running, "order-7001", SCHEDULED)
    await page.goto(f"{running.url}/ui#order-7001")
    status = page.locator("#status")
    await expect(status).to_have_text("shipment_scheduled", timeout=PATIENCE_MS)
    await expect(page.get_by_role("status")).to_have_text(
        "live: updates as the workflow changes", timeout=PATIENCE_MS
    )
    await page.evaluate("window.notReloaded = true")

    await running.set_state("shipping", "order-7001", "in_transit")
    await expect(status).to_have_text("in_transit", timeout=2_000)  # the two seconds
    shipping = page.locator('.card[data-participant="shipping"]')
    await expect(shipping.locator("dd").first).to_have_text("in_transit")
    assert await page.evaluate("window.notReloaded") is True
    assert page_tab.errors == []


async def test_a_participant_going_dark_turns_its_card_stale_and_back(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    await given(running, "order-7002", SCHEDULED)
    await page.goto(f"{running.url}/ui#order-7002")
    payment = page.locator('.card[data-participant="payment"]')
    await expect(payment.locator(".source")).to_have_text(FRESH, timeout=PATIENCE_MS)

    await running.dark("payment", True)
    await expect(payment.locator(".source")).to_have_text(STALE, timeout=PATIENCE_MS)
    await expect(payment.locator(".outcome")).to_have_text("unavailable")
    await expect(payment.locator(".error")).to_contain_text("Error:")
    await expect(page.locator("#complete")).to_contain_text("no")
    # The last good part is still shown, with its state, while it stands in.
    await expect(payment.locator("dd").first).to_have_text("captured")

    await running.dark("payment", False)
    await expect(payment.locator(".source")).to_have_text(FRESH, timeout=PATIENCE_MS)
    await expect(payment.locator(".error")).to_have_count(0)
    await expect(page.locator("#complete")).to_have_text("yes", timeout=PATIENCE_MS)


async def test_an_unknown_id_says_not_found(page_tab: Tab, running: Stack) -> None:
    page = page_tab.page
    await page.goto(f"{running.url}/ui")
    await page.get_by_label("Workflow id").fill("order-9999")
    await page.get_by_role("button", name="Show").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Workflow not found", timeout=PATIENCE_MS)
    await expect(alert).to_contain_text("no participant has a record of this workflow")
    await expect(page.get_by_role("status")).to_have_text(
        "not watching order-9999: Workflow not found"
    )
    await expect(page.locator("#workflow")).to_be_hidden()


async def test_a_malformed_id_shows_the_gateways_problem_detail(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    path = f"{running.url}/workflows/..%2Fadmin/status"
    async with running.gateway.client.get(URL(path, encoded=True)) as response:
        problem = Problem.model_validate_json(await response.read())
    assert response.status == 400
    await page.goto(f"{running.url}/ui")
    await page.get_by_label("Workflow id").fill("../admin")
    await page.keyboard.press("Enter")
    alert = page.get_by_role("alert")
    await expect(alert.locator("#problem-title")).to_have_text(problem.title, timeout=PATIENCE_MS)
    await expect(alert.locator("#problem-detail")).to_have_text(problem.detail)


async def test_ids_given_to_the_page_are_listed_with_their_status_and_can_be_followed(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    await given(running, "order-7003", SCHEDULED)
    await given(running, "order-7004", {"payment": "failed"})
    await page.goto(f"{running.url}/ui?ids=order-7003,order-7004,order-9998")
    listed = page.get_by_role("region", name="Orders in flight")
    await expect(listed.get_by_role("listitem")).to_have_count(3, timeout=PATIENCE_MS)
    await expect(listed.get_by_role("listitem").nth(1)).to_contain_text("payment_failed")
    await expect(listed.get_by_role("listitem").nth(2)).to_contain_text("Workflow not found")
    # By keyboard alone: to the first id, and follow it.
    await listed.get_by_role("link", name="order-7003").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("shipment_scheduled", timeout=PATIENCE_MS)
    assert page.url.endswith("#order-7003")
    assert page_tab.errors == []


async def test_an_ids_url_elsewhere_is_refused(page_tab: Tab, running: Stack) -> None:
    page = page_tab.page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{running.url}/ui?ids_url=//example.invalid/ids")
    await expect(page.locator("#in-flight-note")).to_have_text(
        "ids_url must be a path on this gateway, starting with /."
    )
    assert all(url.startswith(running.url) for url in requested), requested


async def test_every_control_is_labelled_and_the_keyboard_reaches_it(
    page_tab: Tab, running: Stack
) -> None:
    page = page_tab.page
    await given(running, "order-7006", SCHEDULED)
    await page.goto(f"{running.url}/ui")
    unlabelled = await page.evaluate(
        """[...document.querySelectorAll("input, button, select, textarea")]
             .filter((c) => !(c.labels?.length || c.textContent.trim() || c.ariaLabel))
             .map((c) => c.outerHTML)"""
    )
    assert unlabelled == []
    # The id field has the focus; before it comes only the link past the header.
    await page.keyboard.press("Shift+Tab")
    await expect(page.get_by_role("link", name="Skip to the workflow")).to_be_focused()
    await page.keyboard.press("Tab")
    # Tab goes on from the field to its button, and Enter presses it.
    await page.keyboard.type("order-7006")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Show")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("shipment_scheduled", timeout=PATIENCE_MS)
    # The skip link takes the focus to the workflow, and leaves the workflow shown.
    await page.get_by_role("link", name="Skip to the workflow").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("main")).to_be_focused()
    assert page.url.endswith("#order-7006")


async def test_with_auth_on_a_wrong_key_is_refused_and_a_right_one_kept_for_the_session(
    browser: Browser,
) -> None:
    key = "operator-key-0123456789"
    async with stack(auth={"enabled": True, "keys": {key: "tenant-a"}}) as running:
        await given(running, "order-7005", SCHEDULED)
        async with tab(browser) as opened:
            page = opened.page
            sent: list[str | None] = []
            page.on(
                "request",
                lambda request: (
                    sent.append(request.headers.get("x-api-key"))
                    if "/workflows/" in request.url
                    else None
                ),
            )
            await page.goto(f"{running.url}/ui#order-7005")
            key_field = page.get_by_label("API key")
            await expect(key_field).to_be_visible(timeout=PATIENCE_MS)
            await expect(key_field).to_be_focused()

            await key_field.fill("not-the-key-0123456789")
            await page.keyboard.press("Enter")
            await expect(page.locator("#key-note")).to_contain_text(
                "That key was refused", timeout=PATIENCE_MS
            )
            assert await page.evaluate("sessionStorage.length") == 0

            await key_field.fill(key)
            await page.get_by_role("button", name="Use key").click()
            await expect(page.locator("#status")).to_have_text(
                "shipment_scheduled", timeout=PATIENCE_MS
            )
            await expect(key_field).to_be_hidden()
            stored = await page.evaluate("Object.values(sessionStorage)")
            assert stored == [key]
            assert await page.evaluate("document.cookie") == ""
            assert key not in page.url
            assert sent[0] is None and sent[-1] == key
            assert "not-the-key-0123456789" in sent

            # A reload in the same tab keeps the key: no second prompt.
            await page.reload()
            await expect(page.locator("#status")).to_have_text(
                "shipment_scheduled", timeout=PATIENCE_MS
            )
            await expect(key_field).to_be_hidden()

            # Ids from a path of the origin, maybe not the gateway's: it never gets the
            # key, while the batch asking for their statuses does.
            asked: list[dict[str, str]] = []

            async def ids(route: Route) -> None:
                asked.append(route.request.headers)
                await route.fulfill(json=["order-7005"])

            await page.route(lambda url: urlsplit(url).path == "/listed-ids.json", ids)
            await page.goto(f"{running.url}/ui?ids_url=/listed-ids.json")
            listed = page.get_by_role("region", name="Orders in flight")
            await expect(listed.get_by_role("listitem")).to_contain_text(
                "shipment_scheduled", timeout=PATIENCE_MS
            )
            assert asked and all("x-api-key" not in headers for headers in asked)
