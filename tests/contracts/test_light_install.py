"""The kit installs on its own, with pydantic and nothing of the aggregator, and
verifies a reference participant from that install."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from tests.participants.harness import choreography

KIT = Path(__file__).parents[2] / "contracts"
AGGREGATOR_ONLY = {"aiohttp", "uvloop", "rich", "prometheus-client", "cachetools", "nats-py"}


def run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_the_kit_alone_installs_and_verifies_a_participant(tmp_path: Path) -> None:
    # Built from a copy: a build writes into the folder it builds.
    source = tmp_path / "contracts"
    shutil.copytree(
        KIT, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    venv = tmp_path / "venv"
    await asyncio.to_thread(run, sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    await asyncio.to_thread(run, pip, "install", "-q", source)
    installed = await asyncio.to_thread(run, pip, "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert "participant-contract-kit" in names and "pydantic" in names
    assert not names & AGGREGATOR_ONLY, names & AGGREGATOR_ONLY
    async with choreography(state_hook=True) as run_:
        base = run_.base_urls["payment"]
        verify: list[str | Path] = [
            venv / "bin" / "participant-contract", "verify", "payment",
            "--base-url", base, "--state-hook", f"{base}/_contract/state",
        ]  # fmt: skip
        report = await asyncio.to_thread(run, *verify)
    assert report.rstrip().endswith(" passed, 0 failed"), report
    assert "PASS  state:captured" in report


README = (KIT / "README.md").read_text()
START = """    from participants import Choreography, ChoreographyConfig

    config = ChoreographyConfig(ports={"payment": 0}, only=("payment",), state_hook=True)
    async with Choreography(config) as run:
        yield run.base_urls["payment"]"""


def test_the_readme_s_pytest_example_runs_in_pytest_asyncio_s_strict_mode(
    tmp_path: Path,
) -> None:
    section = README[README.index("### In your own pytest suite") :]
    start = section.index("```python\n") + len("```python\n")
    example = section[start : section.index("\n```", start)]
    placeholder = '''    ...  # start your service (or point at it), then
    yield "http://127.0.0.1:8101"'''
    assert placeholder in example
    (tmp_path / "test_contract.py").write_text(example.replace(placeholder, START))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "11 passed in" in result.stdout, result.stdout
