"""The status-aggregator command, run as a user runs it: a real process."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.gateway.harness import gateway_settings, running_gateway
from tests.loopback import LoopbackParticipants, healthy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(path: Path, server: LoopbackParticipants, port: int = 0, extra: str = "") -> Path:
    lines = [extra, "[gateway]", 'host = "127.0.0.1"', f"port = {port}"]
    for name, url in server.urls().items():
        lines += [f"[participants.{name}]", f'url = "{url}"']
    path.write_text("\n".join(lines) + "\n")
    return path


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aggregator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def serving(*args: str, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aggregator",
        "serve",
        *args,
        "--port",
        str(port),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as client:
            await until_answering(client, f"http://127.0.0.1:{port}/readyz")
        yield process
    finally:
        if process.returncode is None:
            for worker in await asyncio.to_thread(worker_pids, process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)  # none is left holding the port
            process.kill()
            await process.wait()


async def until_answering(client: aiohttp.ClientSession, url: str) -> None:
    """Return once ``url`` answers 200: a server started in another process is ready
    (a bounded wait for its start-up, 20 s at most)."""
    for _ in range(400):
        try:
            async with client.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


async def refused(port: int) -> None:
    """Return once new connections to the port are refused."""
    for _ in range(400):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.025)
    raise AssertionError(f"port {port} still accepts connections")


async def test_check_config(tmp_path: Path, participants: LoopbackParticipants) -> None:
    good = write_config(tmp_path / "good.toml", participants)
    code, out, err = await run("check-config", str(good))
    assert (code, err) == (0, "")
    assert out.startswith(f"{good}: ok (workflow order_fulfilment; participants payment,")

    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("port = 0", "port = 70000"))
    code, out, err = await run("check-config", str(bad))
    assert code == 2 and out == ""
    assert (
        err
        == f"status-aggregator: {bad}: gateway.port: Input should be less than or equal to 65535\n"
    )


async def test_invalid_configuration_stops_serve_with_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    code, _, err = await run("serve", "--config", str(missing))
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err
    code, _, err = await run(
        "serve", "--config", str(missing), env={"STATUS_AGGREGATOR_CONFIG": str(missing)}
    )
    assert code == 2


async def test_environment_overrides_a_single_value(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    config = write_config(tmp_path / "a.toml", participants)
    code, out, _ = await run(
        "check-config", str(config), env={"STATUS_AGGREGATOR_GATEWAY__PORT": "9123"}
    )
    assert code == 0 and "gateway 127.0.0.1:9123" in out
    code, _, err = await run(
        "check-config", str(config), env={"STATUS_AGGREGATOR_DEADLINE_MS": "soon"}
    )
    assert code == 2
    assert err.strip() == (
        "status-aggregator: environment: STATUS_AGGREGATOR_DEADLINE_MS: 'soon' is not a JSON value"
    )


async def test_a_taken_port_is_one_line(tmp_path: Path, participants: LoopbackParticipants) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "a.toml", participants)
        code, _, err = await run("serve", "--config", str(config), "--port", str(port))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last == f"status-aggregator: cannot listen on 127.0.0.1:{port}: address already in use"
    assert "Traceback" not in err


async def test_serve_answers_logs_and_shuts_down_gracefully(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    healthy(participants)
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=404)

    config = write_config(tmp_path / "a.toml", participants, extra="deadline_ms = 5000")
    port = free_port()
    async with serving("--config", str(config), "--log-json", port=port) as process:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as client:
            async with client.get(
                f"{base}/workflows/order-7/status", headers={"X-Request-ID": "cli-req-1"}
            ) as response:
                assert response.status == 200
                assert (await response.json())["status"] == "in_transit"
            participants.behaviours["payment"] = slow
            in_flight = asyncio.create_task(client.get(f"{base}/workflows/order-8/status"))
            await participants.until_received(6)
            process.send_signal(signal.SIGTERM)
            await refused(port)  # it stops accepting while the request is still in flight
            release.set()
            finished = await in_flight
            assert finished.status == 200
        assert await asyncio.wait_for(process.wait(), 30) == 0
        assert process.stderr is not None
        lines = [json.loads(line) for line in (await process.stderr.read()).decode().splitlines()]
    access = [line for line in lines if line["logger"] == "aggregator.access"]
    first = next(line for line in access if line["request_id"] == "cli-req-1")
    assert first["status"] == 200 and first["complete"] == "true"
    assert first["path"] == "/workflows/order-7/status" and first["latency_ms"] >= 0
    assert all(line["request_id"] for line in lines)


async def test_serve_with_two_workers_sharing_the_port(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    config = write_config(tmp_path / "a.toml", participants)
    port = free_port()
    async with serving("--config", str(config), "--workers", "2", port=port) as process:
        async with aiohttp.ClientSession() as client:
            for _ in range(10):
                async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_status_from_a_gateway_and_embedded(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    healthy(participants)
    async with running_gateway(gateway_settings(participants)) as gw:
        code, table, err = await run("status", "order-42", "--gateway", gw.url)
        assert (code, err) == (0, "")
        code, raw, _ = await run("status", "order-42", "--gateway", gw.url, "--json")
        assert code == 0 and json.loads(raw)["status"] == "in_transit"
        participants.behaviours.clear()
        code, _, err = await run("status", "order-43", "--gateway", gw.url)
        assert code == 1 and err.startswith("status-aggregator: HTTP 404:")
        code, _, err = await run("status", "../x", "--gateway", gw.url)
        assert code == 2 and "HTTP 400" in err
    assert "order-42: in_transit (complete;" in table
    for row in ("payment", "inventory", "shipping", "captured", "reserved"):
        assert row in table
    assert "since 2026-01-01 10:00:00 UTC" in table
    assert "timeline: payment captured, then inventory reserved, then shipping in_transit" in table

    healthy(participants)
    config = write_config(tmp_path / "a.toml", participants)
    code, raw, _ = await run("status", "order-9", "--config", str(config), "--json")  # embedded
    assert code == 0 and json.loads(raw)["participants"]["payment"]["state"] == "captured"
    code, _, err = await run("status", "a/b", "--config", str(config))
    assert code == 2 and "is not allowed" in err


@pytest.mark.parametrize("args", [["status", "x", "--gateway", "http://127.0.0.1:1"]])
async def test_an_unreachable_gateway_is_one_line(args: list[str]) -> None:
    code, _, err = await run(*args)
    assert code == 1 and err.count("\n") == 1 and err.startswith("status-aggregator: cannot read")


async def test_embedded_status_keeps_the_gateway_s_exit_codes(
    tmp_path: Path, participants: LoopbackParticipants, closed_port: int
) -> None:
    """No participant knows it, or none could be read: not a status, exit 1."""
    config = write_config(tmp_path / "a.toml", participants)
    code, out, err = await run("status", "order-9999", "--config", str(config))
    assert (code, out) == (1, "")
    assert err == ("status-aggregator: order-9999: no participant has a record of this workflow\n")
    dead = write_config(
        tmp_path / "dead.toml",
        LoopbackParticipants(base_url=f"http://127.0.0.1:{closed_port}"),
    )
    code, out, err = await run("status", "order-1", "--config", str(dead), "--json")
    assert (code, out) == (1, "")
    assert err.startswith("status-aggregator: order-1: no participant could be read (payment:")
    assert "connection refused" in err and err.count("\n") == 1


async def test_the_version_is_the_package_s() -> None:
    from aggregator import __version__
    from aggregator._aggregator import USER_AGENT

    code, out, _ = await run("--version")  # python -m aggregator --version
    script = Path(sys.executable).parent / "status-aggregator"
    console = await asyncio.create_subprocess_exec(
        script, "--version", stdout=asyncio.subprocess.PIPE
    )
    printed, _ = await asyncio.wait_for(console.communicate(), 60)
    assert code == 0 and out == f"status-aggregator {__version__}\n"
    assert printed.decode() == out and console.returncode == 0
    assert importlib.metadata.version("choreography-status-aggregator") == __version__
    assert f"choreography-status-aggregator/{__version__}" == USER_AGENT


async def test_a_closed_pipe_is_no_traceback(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    healthy(participants)
    config = write_config(tmp_path / "a.toml", participants)
    for args in (["status", "order-42", "--config", str(config), "--json"], ["--help"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before anything is written: `| head -0`
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aggregator", *args, stdout=write, stderr=asyncio.subprocess.PIPE
        )
        os.close(write)
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert err == b"", (args, err.decode())
        assert process.returncode in (0, 1), args


async def test_init_writes_the_example_and_serve_names_it(tmp_path: Path) -> None:
    target = tmp_path / "aggregator.toml"
    code, _, err = await run("serve", "--config", str(target))
    assert code == 2 and f"'status-aggregator init {target}' writes a commented example" in err
    code, out, _ = await run("init", str(target))
    assert code == 0 and str(target) in out
    example = Path(__file__).parents[2] / "examples" / "aggregator.toml"
    assert target.read_text() == example.read_text()
    code, _, err = await run("init", str(target))
    assert code == 2 and "already exists; pass --force" in err
    code, out, _ = await run("check-config", str(target))
    assert code == 0 and out.startswith(f"{target}: ok")


async def gunicorn(
    tmp_path: Path, config: Path, port: int, **env: str
) -> asyncio.subprocess.Process:
    """The README's gunicorn command: one aiohttp worker on ``port``, stderr piped."""
    return await asyncio.create_subprocess_exec(
        Path(sys.executable).parent / "gunicorn",
        "aggregator.gateway:gunicorn_app",
        *("--bind", f"127.0.0.1:{port}", "--workers", "1"),
        *("--worker-class", "aiohttp.GunicornUVLoopWebWorker"),
        # HOME: where newer gunicorns put their control socket, kept to this test.
        env={
            **os.environ,
            "STATUS_AGGREGATOR_CONFIG": str(config),
            "HOME": str(tmp_path),
            **env,
        },
        stderr=asyncio.subprocess.PIPE,
    )


async def test_gunicorn_serves_the_gateway_with_its_aiohttp_worker(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    """The README's gunicorn command, as the gunicorn extra installs it."""
    healthy(participants)
    config = write_config(tmp_path / "a.toml", participants)
    port = free_port()
    process = await gunicorn(tmp_path, config, port)
    try:
        async with aiohttp.ClientSession() as client:
            url = f"http://127.0.0.1:{port}/workflows/order-42/status"
            await until_answering(client, f"http://127.0.0.1:{port}/readyz")
            async with client.get(url) as response:
                status, body = response.status, await response.json()
        assert status == 200 and body["status"] == "in_transit"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0


async def test_a_gunicorn_worker_writes_every_access_line_by_its_exit(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    """Access lines wait in memory for their batch: the worker's cleanup on SIGTERM
    writes those still waiting."""
    healthy(participants)
    config = write_config(tmp_path / "a.toml", participants)
    port = free_port()
    process = await gunicorn(tmp_path, config, port, STATUS_AGGREGATOR_GATEWAY__LOG_FORMAT="json")
    try:
        async with aiohttp.ClientSession() as client:
            await until_answering(client, f"http://127.0.0.1:{port}/readyz")
            for n in range(5):
                url = f"http://127.0.0.1:{port}/workflows/order-{n}/status"
                async with client.get(url, headers={"X-Request-ID": f"gu-{n}"}) as response:
                    assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    ours = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    access = [line for line in ours if line["logger"] == "aggregator.access"]
    assert sorted(line["request_id"] for line in access if line["path"] != "/readyz") == [
        f"gu-{n}" for n in range(5)
    ]


def _workflow_requests(metrics: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if (
            line.startswith("aggregator_http_requests_total{")
            and "/workflows/{workflow_id}" in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@pytest.mark.parametrize("runner", ["serve", "gunicorn"])
async def test_metrics_count_the_whole_service_across_workers(
    tmp_path: Path, participants: LoopbackParticipants, runner: str
) -> None:
    """N requests spread over two workers: a scrape reaching either shows N."""
    healthy(participants)
    config = write_config(tmp_path / "a.toml", participants)
    shared = tmp_path / "metrics"
    shared.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "STATUS_AGGREGATOR_CONFIG": str(config),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "HOME": str(tmp_path),
    }
    if runner == "serve":
        command = [
            sys.executable,
            "-m",
            "aggregator",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ]
    else:
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "aggregator.gateway:gunicorn_app",
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--reuse-port"),
            *("--worker-class", "aiohttp.GunicornUVLoopWebWorker"),
        ]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stderr=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    requests = 0
    workers: set[str] = set()  # a request id starts with its process's own tag
    try:
        # A connection each, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:
            await until_answering(client, f"{base}/readyz")
            while (len(workers) < 2 or requests < 40) and requests < 1_000:
                async with client.get(f"{base}/workflows/order-{requests}/status") as response:
                    assert response.status == 200
                    workers.add(response.headers["X-Request-ID"][:16])
                requests += 1
            for _ in range(200):  # each worker writes its counts once a second
                async with client.get(f"{base}/metrics") as response:
                    scraped = _workflow_requests(await response.text())
                if scraped == requests:
                    break
                await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)
    assert len(workers) == 2 and scraped == requests
    # Each worker wrote its counts as it stopped: both served some of them.
    per_worker = [_workflow_requests_in(p) for p in shared.glob("status-aggregator-*.json")]
    assert len(per_worker) == 2 and sum(per_worker) == requests, per_worker
    assert all(0 < count < requests for count in per_worker), per_worker


def _workflow_requests_in(path: Path) -> int:
    data = json.loads(path.read_text())
    return sum(row[-1] for row in data["requests"] if row[0].startswith("/workflows/{"))


def worker_pids(parent: int) -> list[int]:
    """The serve process's workers (not multiprocessing's resource tracker); a
    process that has ended meanwhile is left out."""
    workers = []
    with contextlib.suppress(OSError):
        for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.append(int(pid))
    return workers


async def test_a_worker_that_dies_takes_the_service_down_with_exit_1(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    """Not half a port served in silence: whatever supervises serve restarts it."""
    config = write_config(tmp_path / "a.toml", participants)
    port = free_port()
    async with serving("--config", str(config), "--workers", "2", port=port) as process:
        workers = await asyncio.to_thread(worker_pids, process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 60) == 1
        assert process.stderr is not None
        err = (await process.stderr.read()).decode()
    assert f"(pid {workers[0]}) ended by signal 9; stopping the others" in err
