"""The contract as a Pact V4 file, verified with pact-python's own verifier: the
reference participant passes it, a broken one fails it."""

from __future__ import annotations

import asyncio
import gc
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pact import Verifier

from contracts import Contract
from contracts._pact import pact, write_pact
from tests.contracts.broken_provider import payment_variant
from tests.participants.harness import choreography

# pact-python's verifier leaves its state-callback server's socket to the garbage
# collector: collected inside the test that made it, and not counted against us.
LEAKS = [
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACT_DO_NOT_TRACK", "true")  # no usage report sent anywhere


def verify(pacts: Path, base_url: str) -> None:
    """pact-python's verifier, setting each provider state up through the kit's hook."""

    # pact-python passes its arguments by these names.
    def set_up(state: str, action: str, parameters: dict[str, Any] | None) -> None:
        if action != "setup" or not parameters:
            return  # a workflow never seen needs nothing
        request = urllib.request.Request(
            f"{base_url}/_contract/state",
            data=json.dumps(parameters).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    (
        Verifier("payment", host="127.0.0.1")
        .add_source(pacts)
        .add_transport(url=base_url)
        .state_handler(set_up, teardown=False)
        .verify()
    )
    gc.collect()


def test_the_pact_file_names_both_sides_and_every_state(tmp_path: Path) -> None:
    written = json.loads(write_pact(Contract.of("payment"), tmp_path).read_text())
    assert written == pact(Contract.of("payment"))  # the same document at every run
    assert (written["consumer"]["name"], written["provider"]["name"]) == (
        "status-aggregator",
        "payment",
    )
    assert written["metadata"]["pactSpecification"]["version"] == "4.0"
    described = [
        i["providerStates"][0].get("params", {}).get("state") for i in written["interactions"]
    ]
    assert described == ["pending", "authorized", "captured", "failed", "refunded", None]
    rules = written["interactions"][0]["response"]["matchingRules"]["body"]
    # Each interaction expects its own state exactly: a provider answering one state
    # for all would fail four of them.
    assert rules["$.state"]["matchers"] == [{"match": "equality"}]
    bodies = [i["response"].get("body", {}).get("content", {}) for i in written["interactions"]]
    assert [body.get("state") for body in bodies] == described
    header = written["interactions"][0]["response"]["matchingRules"]["header"]
    assert header["Content-Type"]["matchers"] == [
        {"match": "regex", "regex": r"(?i)^application/(json|[^;\s]*\+json)\s*(;.*)?$"}
    ]
    assert rules["$.version"]["matchers"] == [{"match": "integer"}]
    assert rules["$.currency"]["matchers"] == [{"match": "regex", "regex": "^[A-Z]{3}$"}]


@LEAKS[0]
@LEAKS[1]
async def test_pact_s_verifier_passes_the_reference_participant(tmp_path: Path) -> None:
    write_pact(Contract.of("payment"), tmp_path)
    async with choreography(state_hook=True) as run:
        await asyncio.to_thread(verify, tmp_path, run.base_urls["payment"])


@LEAKS[0]
@LEAKS[1]
async def test_pact_s_verifier_fails_a_broken_participant(tmp_path: Path) -> None:
    write_pact(Contract.of("payment"), tmp_path)
    async with payment_variant("epoch-date") as base_url:  # updated_at "1767261600"
        with pytest.raises(RuntimeError, match=r"(?i)verif"):
            await asyncio.to_thread(verify, tmp_path, base_url)
