"""The commands in contracts/README.md run as written against the reference participants."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

import pytest

from aggregator._cli import main as aggregator_main
from contracts import Stub, StubOptions
from contracts.cli import _parser as contracts_parser
from contracts.cli import main as kit_main
from participants import DEFAULT_PORTS
from tests.participants.harness import choreography

README = Path(__file__).parents[2] / "contracts" / "README.md"


def verify_commands() -> list[list[str]]:
    lines = README.read_text().splitlines()
    builtin = ("payment", "inventory", "shipping")
    verify = "python -m contracts verify"
    commands = [shlex.split(line) for line in lines if line.startswith(verify)]
    return [command for command in commands if command[4] in builtin]


async def test_the_readme_verify_commands_pass(tmp_path: Path) -> None:
    commands = verify_commands()
    assert [c[4] for c in commands] == ["payment", "inventory", "shipping"]
    async with choreography(state_hook=True) as run:
        for command in commands:
            name = command[4]
            line = " ".join(command)
            for participant, port in DEFAULT_PORTS.items():  # the run's own free ports
                actual = run.base_urls[participant].rsplit(":", 1)[1]
                line = line.replace(f"127.0.0.1:{port}", f"127.0.0.1:{actual}")
            args = shlex.split(line)[1:]
            process = await asyncio.create_subprocess_exec(
                sys.executable, *args, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, (name, out.decode(), err.decode())
            assert out.decode().splitlines()[-1].endswith("passed, 0 failed")
    assert (tmp_path / "shipping-contract.xml").is_file()


def declared_commands() -> list[list[str]]:
    lines = README.read_text().splitlines()
    starts = ("python -m contracts verify flight", "status-aggregator verify")
    return [shlex.split(line) for line in lines if line.startswith(starts)]


def travel_config(port: int) -> str:
    """The README's flight configuration, in a whole travel workflow."""
    text = README.read_text()
    start = text.index("[workflows.travel.participants]")
    block = text[start : text.index("```", start)].replace("8711", str(port))
    states = '["requested", "booked", "cancelled", "absent"]'
    rules = f'[[workflows.travel.rules]]\nstatus = "any"\nwhen = {{ flight = {states} }}\n'
    return f'workflow = "travel"\n{block}\n{rules}'


def test_the_readme_declared_participant_commands_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = declared_commands()
    assert [c[:3] for c in commands] == [
        ["status-aggregator", "verify", "--config"],
        ["python", "-m", "contracts"],
    ]
    options = contracts_parser().parse_args(commands[1][3:])
    flight = StubOptions("flight", states=options.states, path=options.path)
    with Stub(flight) as stub:
        port = stub.base_url.rsplit(":", 1)[1]
        (tmp_path / "aggregator.toml").write_text(travel_config(int(port)))
        monkeypatch.chdir(tmp_path)
        for command, main in ((commands[0][1:], aggregator_main), (commands[1][3:], kit_main)):
            args = [word.replace("127.0.0.1:8711", f"127.0.0.1:{port}") for word in command]
            assert main(args) == 0, capsys.readouterr()
            assert capsys.readouterr().out.splitlines()[-1] == "9 passed, 0 failed"
