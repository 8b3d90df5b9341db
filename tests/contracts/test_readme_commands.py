"""The commands in contracts/README.md run as written against the reference participants."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

from participants import DEFAULT_PORTS
from tests.participants.harness import choreography

README = Path(__file__).parents[2] / "contracts" / "README.md"


def verify_commands() -> list[list[str]]:
    lines = README.read_text().splitlines()
    return [shlex.split(line) for line in lines if line.startswith("python -m contracts verify")]


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
