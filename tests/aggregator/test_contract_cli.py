"""``status-aggregator verify`` and ``stub``: the contract kit for a participant of
this configuration, its states, URL, timeout and body cap read from it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator import Settings, StatusAggregator
from aggregator._cli import main
from contracts import Outcome, Stub, StubOptions

TRAVEL = """
workflow = "travel"

[workflows.travel.participants]
flight = {{ states = ["requested", "booked", "cancelled"], terminal = ["cancelled"] }}
hotel = {{ states = ["requested", "booked"] }}

[[workflows.travel.rules]]
status = "booked"
when = {{ flight = ["booked"], hotel = ["booked"] }}
[[workflows.travel.rules]]
status = "cancelled"
when = {{ flight = ["cancelled"] }}
[[workflows.travel.rules]]
status = "booking"
when = {{ flight = ["requested", "booked", "absent"], hotel = ["requested", "booked", "absent"] }}

[participants.hotel]
url = "http://127.0.0.1:{hotel_port}/hotels/{{workflow_id}}"

[participants.flight]
url = "http://127.0.0.1:{port}/flights/{{workflow_id}}/status"
{flight}
"""
FLIGHT = {"states": ("requested", "booked", "cancelled"), "path": "/flights/{workflow_id}/status"}


def travel(tmp_path: Path, port: int, flight: str = "") -> Path:
    """The travel workflow, its flight at ``port`` (``flight``: more of its settings),
    its hotel where nothing answers."""
    path = tmp_path / "aggregator.toml"
    path.write_text(TRAVEL.format(port=port, hotel_port=free_port(), flight=flight))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_verify_runs_the_kit_for_a_declared_participant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Stub(StubOptions("flight", **FLIGHT)) as stub:  # type: ignore[arg-type]
        port = int(stub.base_url.rsplit(":", 1)[1])
        hook = f"{stub.base_url}/_contract/state"
        argv = ["verify", "--config", str(travel(tmp_path, port)), "--participant", "flight"]
        code = main([*argv, "--state-hook", hook])
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.splitlines()[0] == f"contract v1 · flight · http://127.0.0.1:{port}"
        assert "PASS  state:cancelled" in out and "PASS  version:increases" in out
        assert out.splitlines()[-1] == "9 passed, 0 failed"

    # The configured timeout is the kit's budget: 5 ms, against a stub taking 30 ms.
    with Stub(StubOptions("flight", latency_ms=30, **FLIGHT)) as stub:  # type: ignore[arg-type]
        port = int(stub.base_url.rsplit(":", 1)[1])
        tight = travel(tmp_path, port, "timeout_ms = 5\nprotection = { retry = false }")
        argv = ["verify", "--config", str(tight), "--participant", "flight"]
        hook = f"{stub.base_url}/_contract/state"
        assert main([*argv, "--state-hook", hook]) == 1
        out = capsys.readouterr().out
        assert "FAIL  latency:p99" in out
        assert "exceeds the budget of 5 ms, the aggregator's timeout_ms" in out
        # ... unless the command says otherwise.
        assert main([*argv, "--state-hook", hook, "--budget-ms", "60000"]) == 0


def test_verify_keeps_a_built_in_participant_s_own_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Stub(StubOptions("payment")) as stub:
        config = tmp_path / "aggregator.toml"
        config.write_text(
            "".join(
                f'[participants.{name}]\nurl = "{stub.base_url}/{path}/{{workflow_id}}"\n'
                for name, path in (
                    ("payment", "payments"), ("inventory", "r"), ("shipping", "s")
                )
            )
        )  # fmt: skip
        hook = f"{stub.base_url}/_contract/state"
        code = main(["verify", "--config", str(config), "--participant", "payment",
                     "--state-hook", hook])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS  state:refunded" in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["verify", "--participant", "train", "--state-hook", "http://x"],
            "--participant names no participant of workflow travel (it has flight, hotel)",
        ),
        (
            ["stub", "--participant", "flight", "--workflow", "cruise"],
            "workflow: 'cruise' is not defined; known: ['order_fulfilment', 'travel']",
        ),
        (
            ["verify", "--participant", "flight"],
            "pass --state-hook URL so the kit can set up provider states"
            " (or --stateless-only to run only the cases that need none)",
        ),
    ],
)
def test_mistakes_are_one_line_errors(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = travel(tmp_path, 8711)
    assert main([*argv, "--config", str(config)]) == 2
    assert capsys.readouterr().err == f"status-aggregator: {said}\n"


async def test_the_stub_stands_in_where_the_configuration_says(tmp_path: Path) -> None:
    port = free_port()
    config = travel(tmp_path, port)
    command = [sys.executable, "-m", "aggregator", "stub", "--config", str(config),
               "--participant", "flight"]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 60)
        assert first.decode().strip() == (
            f"stub flight http://127.0.0.1:{port}/flights/{{workflow_id}}/status"
        )
        async with StatusAggregator(Settings.from_file(config)) as aggregator:
            status = await aggregator.status("cancelled-7")
        flight, hotel = status.participants["flight"], status.participants["hotel"]
        assert (flight.outcome, flight.state) == (Outcome.OK, "cancelled")
        assert hotel.outcome is Outcome.UNAVAILABLE  # nothing answers for the hotel
        assert status.status == "cancelled"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 60)
