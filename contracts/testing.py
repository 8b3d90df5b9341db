"""The contract kit in a participant team's own pytest suite, with one import.

Example::

    # test_contract.py
    from contracts.testing import contract_test

    test_payment_contract = contract_test(
        "payment",
        base_url_fixture="payment_url",  # a fixture that starts the service, returns its URL
        state_hook="{base_url}/_contract/state",  # or state_setup=my_setup
    )

Each contract case becomes one test, named after the case. With pytest-asyncio
installed the tests are async, so a provider started by an async fixture keeps
answering on the same event loop; otherwise they are plain tests. pytest is
imported only when this is used.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ._kit import Case, StateSetup, Verifier, cases_for
from ._views import DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS


def contract_test(
    participant: str,
    *,
    base_url: str | None = None,
    base_url_fixture: str | None = None,
    state_hook: str | None = None,
    state_setup: StateSetup | None = None,
    path: str | None = None,
    states: Sequence[str] = (),
    timeout: float = 5.0,
    budget_ms: int = DEFAULT_TIMEOUT_MS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    use_asyncio: bool | None = None,
) -> Callable[..., Any]:
    """A parametrized pytest test running every case of ``participant``'s contract.

    Give ``base_url``, or the name of a fixture that returns it. ``state_hook``
    may contain ``{base_url}``. A participant declared in an aggregator's
    configuration gives its ``states`` (the definition's list) and ``path``.
    ``budget_ms`` and ``max_body_bytes`` are the aggregator's ``timeout_ms`` and
    ``max_body_bytes`` for the participant, when its deployment changes them.
    ``use_asyncio`` defaults to whether pytest-asyncio is installed.
    """
    import pytest

    if (base_url is None) == (base_url_fixture is None):
        raise ValueError("give exactly one of base_url and base_url_fixture")
    if use_asyncio is None:
        use_asyncio = importlib.util.find_spec("pytest_asyncio") is not None
    cases = cases_for(participant, states)

    def verifier(fixtures: dict[str, Any]) -> Verifier:
        url = str(base_url if base_url_fixture is None else fixtures[base_url_fixture])
        return Verifier(
            participant,
            url,
            state_hook=state_hook.format(base_url=url.rstrip("/")) if state_hook else None,
            state_setup=state_setup,
            path=path,
            states=states,
            timeout=timeout,
            budget_ms=budget_ms,
            max_body_bytes=max_body_bytes,
        )

    def judge(case: Case, result: Any) -> None:
        if not result.passed:
            pytest.fail(
                f"{participant} {case.name} ({result.workflow_id}): " + "; ".join(result.reasons),
                pytrace=False,
            )

    if use_asyncio:

        async def test(case: Case, **fixtures: Any) -> None:
            judge(case, await verifier(fixtures).run_case(case))

    else:

        def test(case: Case, **fixtures: Any) -> None:  # type: ignore[misc]
            judge(case, asyncio.run(verifier(fixtures).run_case(case)))

    # pytest reads the fixtures a test wants from its signature.
    names = ["case", *([base_url_fixture] if base_url_fixture else [])]
    test.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
    )
    marked: Callable[..., Any] = pytest.mark.parametrize(
        "case", cases, ids=[case.name for case in cases]
    )(test)
    if use_asyncio:
        marked = pytest.mark.asyncio(marked)
    return marked
