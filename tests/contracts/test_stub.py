"""The stub participant: contract-valid answers for consumers, which the kit passes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from contracts import BUILTIN_VIEWS, QUERY_PATHS, Stub, StubOptions
from contracts._kit import Verifier


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("participant", sorted(BUILTIN_VIEWS))
async def test_the_kit_passes_the_stub(participant: str) -> None:
    with Stub(StubOptions(participant)) as stub:
        hook = f"{stub.base_url}/_contract/state"
        results = await Verifier(participant, stub.base_url, state_hook=hook).run()
    assert [r.case.name for r in results if not r.passed] == []
    assert len(results) >= len(BUILTIN_VIEWS[participant].states()) + 2


def test_the_id_names_the_state_and_missing_ids_are_404() -> None:
    with Stub(StubOptions("inventory")) as stub:
        url = stub.base_url + QUERY_PATHS["inventory"]
        status, body = get(url.format(workflow_id="out_of_stock-42"))
        assert (status, body["state"], body["workflow_id"]) == (
            200,
            "out_of_stock",
            "out_of_stock-42",
        )
        assert BUILTIN_VIEWS["inventory"].model_validate(body).version == 1
        again = get(url.format(workflow_id="out_of_stock-42"))[1]
        assert again["updated_at"] == body["updated_at"]  # it has not changed since
        for unknown in ("missing-reserved-1", "order-7"):
            status, body = get(url.format(workflow_id=unknown))
            assert (status, body["title"]) == (404, "No record")


def test_latency_and_failures_can_be_asked_for() -> None:
    with Stub(StubOptions("payment", latency_ms=300, error_rate=1.0)) as stub:
        url = (stub.base_url + QUERY_PATHS["payment"]).format(workflow_id="captured-1")
        started = time.monotonic()
        status, body = get(url)
        waited = time.monotonic() - started
    assert (status, body["title"]) == (503, "Stubbed failure")
    assert waited >= 0.3  # at least the latency asked for; no upper bound is asserted


def test_options_it_cannot_honour_are_one_line_and_exit_2() -> None:
    for args, message in (
        (["--error-rate", "2"], "the error rate must be between 0 and 1"),
        (["--latency-ms", "-1"], "the latency must be 0 ms or more"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "contracts", "stub", "payment", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stderr) == (2, f"python -m contracts: {message}\n")
