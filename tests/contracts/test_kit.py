"""The verification kit against the reference participants and a broken provider."""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import PaymentView
from contracts._kit import KitError, Verifier, cases_for
from contracts.testing import contract_test
from participants import Choreography
from tests.contracts.broken_provider import broken_payment
from tests.participants.harness import choreography


@pytest.fixture
async def providers() -> AsyncIterator[Choreography]:
    async with choreography(state_hook=True) as run:
        yield run


@pytest.fixture
def payment_url(providers: Choreography) -> str:
    return providers.base_urls["payment"]


@pytest.fixture
def inventory_url(providers: Choreography) -> str:
    return providers.base_urls["inventory"]


@pytest.fixture
def shipping_url(providers: Choreography) -> str:
    return providers.base_urls["shipping"]


# The pytest entry point, as a participant team uses it: one test per case.
HOOK = "{base_url}/_contract/state"
test_payment_contract = contract_test("payment", base_url_fixture="payment_url", state_hook=HOOK)
test_inventory_contract = contract_test(
    "inventory", base_url_fixture="inventory_url", state_hook=HOOK
)
test_shipping_contract = contract_test("shipping", base_url_fixture="shipping_url", state_hook=HOOK)


def test_every_state_has_a_case() -> None:
    names = [case.name for case in cases_for("payment")]
    assert names == [
        "not-found",
        *(f"state:{state}" for state in PaymentView.states()),
        "id:letters-digits",
        "id:punctuation",
        "request-headers",
        "version:increases",
        "latency:p99",
    ]


async def test_a_python_callable_can_set_up_provider_states(providers: Choreography) -> None:
    service = providers.services["inventory"]

    async def setup(participant: str, state: str, workflow_id: str) -> None:
        assert participant == "inventory"
        await service.store.put(workflow_id, state, service.sample(state))

    verifier = Verifier("inventory", providers.base_urls["inventory"], state_setup=setup)
    results = await verifier.run()
    assert [r.case.name for r in results if not r.passed] == []
    assert len(results) == len(cases_for("inventory"))


EXPECTED_FAILURES = {
    "not-found": ["expected HTTP 404 for a workflow the provider never saw, got HTTP 200"],
    "state:authorized": ['amount: Input should be a valid integer (got "lots")'],
    "state:captured": ["version: Field required (missing)"],
    "state:failed": [
        "state: Input should be 'pending', 'authorized', 'captured', 'failed' or 'refunded'"
        ' (got "declined")'
    ],
    "state:refunded": [
        "expected HTTP 200, got HTTP 500 for GET {url}/payments/contract-refunded-{n}"
    ],
    "id:letters-digits": [
        "content type 'text/html; charset=utf-8' is not application/json",
        "body is not JSON: '<html><body>Payment</body></html>'",
    ],
    "id:punctuation": ["content type 'text/plain; charset=utf-8' is not application/json"],
}


async def test_a_broken_provider_fails_exactly_the_cases_it_breaks() -> None:
    async with broken_payment() as url:
        verifier = Verifier("payment", url, state_hook=f"{url}/_contract/state")
        results = await verifier.run()
    failures = {r.case.name: list(r.reasons) for r in results if not r.passed}
    assert failures == {
        name: [reason.format(url=url, n=verifier.nonce) for reason in reasons]
        for name, reasons in EXPECTED_FAILURES.items()
    }
    passed = {r.case.name for r in results if r.passed}
    # Extra fields are tolerated; the later cases' ids meet none of the defects.
    assert passed == {"state:pending", "request-headers", "version:increases", "latency:p99"}


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "contracts",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_line_as_the_readme_shows_it(
    providers: Choreography, tmp_path: Path
) -> None:
    for name, base in providers.base_urls.items():
        report = tmp_path / f"{name}.xml"
        code, out, err = await run_cli(
            "verify", name, "--base-url", base, "--state-hook", f"{base}/_contract/state",
            "--junit-xml", str(report),
        )  # fmt: skip
        assert (code, err) == (0, ""), out
        assert out.splitlines()[-1] == f"{len(cases_for(name))} passed, 0 failed"
        suite = ET.parse(report).getroot().find("testsuite")
        assert suite is not None and suite.get("failures") == "0"
        assert suite.get("tests") == str(len(cases_for(name)))

    async with broken_payment() as url:
        report = tmp_path / "broken.xml"
        code, out, _ = await run_cli(
            "verify", "payment", "--base-url", url, "--state-hook", f"{url}/_contract/state",
            "--junit-xml", str(report),
        )  # fmt: skip
    assert code == 1
    assert "  FAIL  state:captured" in out
    assert "- version: Field required (missing)" in out
    assert out.splitlines()[-1] == "4 passed, 7 failed"
    cases = ET.parse(report).getroot().findall("testsuite/testcase")
    messages = [failure.get("message", "") for failure in ET.parse(report).iter("failure")]
    assert len(messages) == 7
    assert any(m.startswith("expected HTTP 200, got HTTP 500 for GET ") for m in messages)
    # Each case says what it checks and what it asked, failed or not.
    refunded = next(case for case in cases if case.get("name") == "state:refunded")
    properties = {p.get("name"): p.get("value", "") for p in refunded.iter("property")}
    assert properties["description"] == "a record in state 'refunded' is served"
    assert properties["url"].startswith(f"{url}/payments/contract-refunded-")
    assert refunded.findtext("system-out", "").startswith("a record in state 'refunded'")


async def test_usage_mistakes_exit_2(providers: Choreography) -> None:
    base = providers.base_urls["payment"]
    code, _, err = await run_cli("verify", "payment", "--base-url", base)
    assert code == 2 and err.startswith("python -m contracts: pass --state-hook URL")
    code, out, _ = await run_cli("verify", "payment", "--base-url", base, "--stateless-only")
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed"
    code, _, _ = await run_cli("verify", "billing", "--base-url", base, "--stateless-only")
    assert code == 2


async def test_an_unreachable_provider_fails_with_the_reason(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    results = await Verifier("payment", url, state_hook=f"{url}/_contract/state").run()
    assert not any(r.passed for r in results)
    assert results[0].reasons[0].startswith(f"no HTTP answer from {url}/payments/")
    assert results[1].reasons[0].startswith(f"state hook {url}/_contract/state unreachable")


def test_verifier_mistakes() -> None:
    with pytest.raises(KitError, match=r"'billing' is not built in .* needs its states and query"):
        Verifier("billing", "http://x", stateless_only=True)
    with pytest.raises(KitError, match="billing: a declared participant needs its query path"):
        Verifier("billing", "http://x", states=["open"], stateless_only=True)
    with pytest.raises(KitError, match="billing: its states repeat one"):
        Verifier("billing", "http://x", states=["a", "a"], path="/b/{workflow_id}")
    with pytest.raises(KitError, match="must start with / and hold"):
        Verifier("payment", "http://x", path="/payments", stateless_only=True)
    with pytest.raises(KitError, match="not both"):
        Verifier("payment", "http://x", state_hook="http://x/h", state_setup=lambda *_: None)
