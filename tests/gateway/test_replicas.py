"""Gateway processes sharing parts through one real Valkey server: a hot workflow
costs one upstream call per participant however many processes are asked, and a
store that stops never fails a status."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.gateway.test_cli import free_port, until_answering, write_config
from tests.loopback import LoopbackParticipants, healthy
from tests.valkey import valkey_server

# Long enough that no part expires during a test, however busy the machine.
SLOW_TIME = "deadline_ms = 20000\n[cache]\nttl_ms = 60000\nterminal_ttl_ms = 60000\n"


@asynccontextmanager
async def gateways(config: Path, count: int) -> AsyncIterator[list[str]]:
    """``count`` gateway processes (``serve``, each on its own port), ready."""
    ports = [free_port() for _ in range(count)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aggregator",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            stderr=asyncio.subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with aiohttp.ClientSession() as client:
            for url in urls:
                await until_answering(client, f"{url}/readyz")
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        await asyncio.gather(*(asyncio.wait_for(p.wait(), 60) for p in processes))


def configured(tmp_path: Path, participants: LoopbackParticipants, cache: str) -> Path:
    config = write_config(tmp_path / "aggregator.toml", participants, extra=SLOW_TIME + cache)
    text = config.read_text()
    for name in ("payment", "inventory", "shipping"):  # a call may take the whole deadline
        text = text.replace(
            f"[participants.{name}]\n", f"[participants.{name}]\ntimeout_ms = 20000\n"
        )
    config.write_text(text)
    return config


async def ask_all(urls: list[str], workflow_id: str, total: int) -> list[int]:
    """``total`` concurrent requests for one id, spread evenly over ``urls``."""
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def one(n: int) -> int:
            url = f"{urls[n % len(urls)]}/workflows/{workflow_id}/status"
            async with client.get(url) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(n) for n in range(total))))


@pytest.mark.parametrize(("backend", "calls"), [("valkey", 1), ("memory", 4)])
async def test_a_hot_workflow_costs_one_call_per_participant_across_processes(
    backend: str,
    calls: int,
    tmp_path: Path,
    participants: LoopbackParticipants,
    valkey_cache: dict[str, Any],
) -> None:
    healthy(participants)
    cache = (
        f'backend = "{valkey_cache["backend"]}"\nprefix = "{valkey_cache["prefix"]}"\n'
        if backend == "valkey"
        else ""
    )
    config = configured(tmp_path, participants, cache)
    async with gateways(config, 4) as urls:
        statuses = await ask_all(urls, "hot-1", 1_000)
        if backend == "valkey":  # the others served what one fetched, or waited for it
            shared = 0.0
            async with aiohttp.ClientSession() as client:
                for url in urls:
                    async with client.get(f"{url}/metrics") as got:
                        text = await got.text()
                    shared += sum(
                        float(line.rsplit(" ", 1)[1])
                        for line in text.splitlines()
                        if line.startswith(("aggregator_participant_shared_hits_total{",
                                            "aggregator_participant_lease_waits_total{"))
                    )  # fmt: skip
            assert shared > 0
    assert statuses == [200] * 1_000
    for name in ("payment", "inventory", "shipping"):
        assert len(participants.requests_to(name)) == calls, name


async def test_a_store_stopped_under_load_never_fails_a_status(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    healthy(participants)
    port = free_port()
    server = valkey_server(tmp_path / "valkey", port=port)
    server.start()
    try:
        cache = f'backend = "valkey://127.0.0.1:{port}/0"\nretry_ms = 200\n'
        config = configured(tmp_path, participants, cache)
        async with gateways(config, 2) as urls:
            assert await ask_all(urls, "before", 50) == [200] * 50
            server.stop()
            # Every id new, so every request needs the store, or its fallback.
            during = await asyncio.gather(*(ask_all(urls, f"during-{n}", 10) for n in range(10)))
            assert [status for batch in during for status in batch] == [200] * 100
            async with aiohttp.ClientSession() as client, client.get(f"{urls[0]}/readyz") as got:
                store = (await got.json())["store"]
            assert store["shared"] is False and store["problem"]
            async with aiohttp.ClientSession() as client, client.get(f"{urls[0]}/metrics") as got:
                assert "aggregator_shared_store_unavailable 1.0" in await got.text()
            server.start()
            # Back: each process finds it again (it asks every retry_ms), and shares again.
            async with aiohttp.ClientSession() as client:
                for _ in range(400):
                    async with client.get(f"{urls[0]}/readyz") as response:
                        store = (await response.json())["store"]
                    if store["shared"]:
                        break
                    await asyncio.sleep(0.05)
            assert await ask_all(urls, "after", 20) == [200] * 20
            assert store == {
                "backend": f"valkey://127.0.0.1:{port}/0",
                "shared": True,
                "problem": None,
            }
    finally:
        server.stop()
