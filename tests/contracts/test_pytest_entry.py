"""contract_test() in another team's suite: failing cases fail, with their reasons."""

from __future__ import annotations

import asyncio

import pytest

from tests.contracts.broken_provider import broken_payment


async def test_generated_tests_fail_with_readable_reasons(pytester: pytest.Pytester) -> None:
    async with broken_payment() as url:
        pytester.makepyfile(
            test_their_contract=f"""
from contracts.testing import contract_test

test_payment = contract_test(
    "payment",
    base_url="{url}",
    state_hook="{{base_url}}/_contract/state",
    use_asyncio=False,
)
"""
        )
        result = await asyncio.to_thread(pytester.runpytest_subprocess, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=7)
    result.stdout.fnmatch_lines(
        [
            "*test_payment?state?captured*",
            "*payment state:captured (contract-captured-*): version: Field required (missing)*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


async def test_a_declared_participant_s_cases_are_generated(pytester: pytest.Pytester) -> None:
    from contracts import Stub, StubOptions

    path = "/flights/{workflow_id}"
    with Stub(StubOptions("flight", states=("requested", "booked"), path=path)) as stub:
        pytester.makepyfile(
            test_their_contract=f"""
from contracts.testing import contract_test

test_flight = contract_test(
    "flight",
    base_url="{stub.base_url}",
    state_hook="{{base_url}}/_contract/state",
    states=["requested", "booked"],
    path="/flights/{{workflow_id}}",
    use_asyncio=False,
)
"""
        )
        result = await asyncio.to_thread(
            pytester.runpytest_subprocess, "-p", "no:cacheprovider", "-v"
        )
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*test_flight?state?booked*PASSED*"])
