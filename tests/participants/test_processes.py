"""The supervisor of participant processes: a process that dies by itself is started
again; the supervisor's own death, even by SIGKILL, leaves nothing running."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from participants import ChoreographyConfig, InUse, ProcessChoreography

FREE = {"payment": 0, "inventory": 0, "shipping": 0}


async def test_a_participant_that_dies_by_itself_is_started_again(tmp_path: Path) -> None:
    config = ChoreographyConfig(ports=dict(FREE), only=("payment",), db_dir=tmp_path, bus="nats")
    async with ProcessChoreography(config) as run:
        child = run.children["payment"]
        assert child.process is not None
        first, port = child.process.pid, child.port
        os.kill(first, signal.SIGKILL)  # not through kill(): nobody asked for it

        async def started_again() -> None:
            while not (child.starts == 2 and child.running and child.tending is not None):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # a restart, once done, lasts

        await asyncio.wait_for(started_again(), 60)
        assert child.process is not None and child.process.pid != first
        assert child.port == port  # the gateway's configuration still holds
        await run.kill("payment")  # on purpose: it stays down
        assert not child.running and child.tending is None


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(n) for n in (task / "children").read_text().split()}
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_supervisor_killed_with_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "participants", "--only", "payment", "--payment-port", "0",
         "--db-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert supervisor.stdout is not None
    assert supervisor.stdout.readline().startswith("payment ")  # listening: all started
    started = children_of(supervisor.pid)
    assert len(started) == 2  # the JetStream server and the participant
    supervisor.kill()
    supervisor.wait()
    supervisor.stdout.close()
    for pid in started:
        # Each gets SIGTERM from the kernel and stops; bounded, not timed.
        for _ in range(600):
            if not Path(f"/proc/{pid}").exists() or "Z" in _state(pid):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"process {pid} outlived its supervisor")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (FileNotFoundError, IndexError):
        return "Z"


async def test_a_second_run_on_a_kept_data_directory_is_refused(tmp_path: Path) -> None:
    config = ChoreographyConfig(ports=dict(FREE), only=(), db_dir=tmp_path, bus="nats")
    async with ProcessChoreography(config) as first:
        assert await first.place_order() == "order-0001"
        second = ProcessChoreography(config)
        with pytest.raises(InUse, match="is in use by another process"):
            await second.__aenter__()  # before a second broker starts on its storage
        assert second.nats_url == ""
    async with ProcessChoreography(config) as again:  # free once the first has ended
        assert again.nats_url.startswith("nats://127.0.0.1:")
        assert again.next_order == "order-0002"  # it goes on counting from the stream
