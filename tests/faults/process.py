"""The gateway as its own process (``status-aggregator serve``), for what only a
process shows: its memory, and how its real server treats abusive clients."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]


@dataclass
class GatewayProcess:
    url: str
    port: int
    process: asyncio.subprocess.Process

    def peak_rss(self) -> int:
        """The process's resident set high-water mark, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _toml(urls: Mapping[str, str], port: int, timeout_ms: int, gateway: Mapping[str, int]) -> str:
    lines = ["deadline_ms = 5000", "[gateway]", f"port = {port}", "access_log = false"]
    lines += [f"{key} = {value}" for key, value in gateway.items()]
    for name, url in urls.items():
        lines += [f"[participants.{name}]", f'url = "{url}"', f"timeout_ms = {timeout_ms}"]
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def gateway_process(
    tmp_path: Path,
    urls: Mapping[str, str],
    *,
    timeout_ms: int = 300,
    gateway: Mapping[str, int] | None = None,
) -> AsyncIterator[GatewayProcess]:
    """A gateway asking ``urls``; ``gateway`` adds integer settings to its table."""
    port = _free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(_toml(urls, port, timeout_ms, gateway or {}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aggregator",
        "serve",
        "--config",
        str(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        else:
            raise RuntimeError("the gateway did not start listening")
        yield GatewayProcess(f"http://127.0.0.1:{port}", port, process)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
