"""Participants declared in an aggregator's configuration: the generic contract,
their states from the workflow definition, their own query path. The kit, the stub
and the Pact file serve them as they serve the three built-in ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from contracts import Contract, Stub, StubOptions, declared_view
from contracts._kit import Verifier, cases_for
from contracts._pact import pact
from contracts.cli import main

STATES = ("requested", "booked", "cancelled")
PATH = "/flights/{workflow_id}/status"


def flight_stub(**options: object) -> Stub:
    return Stub(StubOptions("flight", states=STATES, path=PATH, **options))  # type: ignore[arg-type]


async def test_the_kit_passes_a_declared_participant_s_stub() -> None:
    with flight_stub() as stub:
        verifier = Verifier(
            "flight", stub.base_url, state_hook=f"{stub.base_url}/_contract/state",
            states=STATES, path=PATH,
        )  # fmt: skip
        results = await verifier.run()
    assert [r.case.name for r in results if not r.passed] == []
    assert [r.case.name for r in results] == [
        "not-found",
        "state:requested",
        "state:booked",
        "state:cancelled",
        "id:letters-digits",
        "id:punctuation",
        "request-headers",
        "version:increases",
        "latency:p99",
    ]
    assert results[1].url.startswith(f"{stub.base_url}/flights/contract-requested-")
    assert results[1].url.endswith("/status")


def test_one_state_has_no_version_case() -> None:
    names = [case.name for case in cases_for("seat", ["held"])]
    assert "version:increases" not in names
    assert names[:2] == ["not-found", "state:held"]


def test_the_declared_model_takes_only_its_states_and_keeps_other_fields() -> None:
    flight = declared_view("flight", STATES)
    body = {"workflow_id": "t-1", "version": 1, "updated_at": "2026-01-01T10:00:00Z"}
    view = flight.model_validate({**body, "state": "booked", "seat": "12A"})
    assert (view.state, view.model_extra) == ("booked", {"seat": "12A"})
    with pytest.raises(ValueError, match="'requested', 'booked' or 'cancelled'"):
        flight.model_validate({**body, "state": "canceled"})


@asynccontextmanager
async def misspelling_flight() -> AsyncIterator[str]:
    """Keeps the generic contract, but answers 'canceled' for 'cancelled'."""
    records: dict[str, tuple[str, int]] = {}

    async def set_state(request: web.Request) -> web.StreamResponse:
        wanted = await request.json()
        version = records.get(wanted["workflow_id"], ("", 0))[1] + 1
        records[wanted["workflow_id"]] = (wanted["state"], version)
        return web.Response(status=204)

    async def query(request: web.Request) -> web.StreamResponse:
        workflow_id = request.match_info["workflow_id"]
        if workflow_id not in records:
            return web.Response(status=404)
        state, version = records[workflow_id]
        return web.json_response(
            {
                "workflow_id": workflow_id,
                "state": "canceled" if state == "cancelled" else state,
                "version": version,
                "updated_at": "2026-01-01T10:00:00Z",
            }
        )

    app = web.Application()
    app.router.add_post("/_contract/state", set_state)
    app.router.add_get(PATH, query)
    server = TestServer(app)
    await server.start_server(access_log=None)
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_state_outside_the_declared_list_fails_its_case() -> None:
    async with misspelling_flight() as url:
        verifier = Verifier(
            "flight", url, state_hook=f"{url}/_contract/state", states=STATES, path=PATH,
            latency_requests=2,
        )  # fmt: skip
        results = await verifier.run()
    failed = {r.case.name: r.reasons for r in results if not r.passed}
    assert list(failed) == ["state:cancelled"]
    assert failed["state:cancelled"] == (
        """state: Input should be 'requested', 'booked' or 'cancelled' (got "canceled")""",
    )


def test_the_command_verifies_a_declared_participant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with flight_stub() as stub:
        code = main(
            [
                "verify", "flight", "--states", ",".join(STATES), "--path", PATH,
                "--base-url", stub.base_url, "--state-hook", f"{stub.base_url}/_contract/state",
                "--junit-xml", str(tmp_path / "flight.xml"),
            ]
        )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0] == f"contract v1 · flight · {stub.base_url}"
    assert out.splitlines()[-1] == "9 passed, 0 failed"
    assert 'name="contract.flight"' in (tmp_path / "flight.xml").read_text()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["verify", "flight", "--base-url", "http://x", "--stateless-only"],
            "'flight' is not built in (inventory, payment, shipping): a participant declared"
            " in configuration needs its states and query path",
        ),
        (
            ["verify", "flight", "--states", "a,b", "--base-url", "http://x", "--stateless-only"],
            "flight: a declared participant needs its query path (--path)",
        ),
        (
            ["stub", "flight", "--states", "a,b", "--path", "/flights"],
            "path '/flights' must start with / and hold {workflow_id} once, before any query",
        ),
        (
            ["pact", "flight", "--states", "a,a", "--path", PATH],
            "flight: its states repeat one: ['a', 'a']",
        ),
    ],
)
def test_a_declared_participant_asked_for_wrongly_is_a_one_line_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"python -m contracts: {said}\n"


def test_an_empty_state_in_the_list_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["verify", "flight", "--states", "a,,b", "--path", PATH, "--base-url", "http://x"])
    assert exited.value.code == 2
    assert "'a,,b': states are separated by single commas" in capsys.readouterr().err


def test_the_pact_file_of_a_declared_participant_has_its_states_and_path() -> None:
    document = pact(Contract.of("flight", states=STATES, path=PATH))
    interactions = document["interactions"]
    assert document["provider"] == {"name": "flight"}
    assert [i["request"]["path"] for i in interactions] == [
        "/flights/pact-requested-1/status",
        "/flights/pact-booked-1/status",
        "/flights/pact-cancelled-1/status",
        "/flights/pact-never-seen-1/status",
    ]
    rules = interactions[0]["response"]["matchingRules"]["body"]
    assert rules["$.state"]["matchers"] == [{"match": "equality"}]
    assert interactions[0]["response"]["body"]["content"]["state"] == "requested"
    assert json.dumps(document)  # JSON all through
