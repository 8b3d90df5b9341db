"""``status-aggregator watch``, run as a user runs it: a real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.gateway.harness import gateway_settings, running_gateway
from tests.gateway.test_cli import run, write_config
from tests.loopback import LoopbackParticipants, answer, healthy


async def test_watch_through_a_gateway_prints_a_line_per_change_until_final(
    participants: LoopbackParticipants,
) -> None:
    healthy(participants)
    settings = gateway_settings(participants, cache={"ttl_ms": 200})
    async with running_gateway(settings) as gw:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "aggregator", "watch", "order-42", "--gateway", gw.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 60)
        participants.behaviours["shipping"] = answer("shipping", "delivered", version=2)
        rest, err = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, err) == (0, b"")
    line = first.decode()
    assert " order-42 in_transit (complete): payment captured (live)" in line
    assert "shipping in_transit (live)" in line
    (last,) = rest.decode().splitlines()
    assert " order-42 delivered (complete): " in last and last.endswith("; final")


async def test_watch_embedded_as_json_lines(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    participants.behaviours["payment"] = answer("payment", "failed")
    config = write_config(tmp_path / "a.toml", participants)
    code, out, err = await run("watch", "order-7", "--config", str(config), "--json")
    assert (code, err) == (0, "")
    (only,) = out.splitlines()  # failed: over at once
    event = json.loads(only)
    assert event["final"] is True and event["status"]["status"] == "payment_failed"


async def test_watch_refusals_are_one_line_with_the_status_exit_codes(
    tmp_path: Path, participants: LoopbackParticipants
) -> None:
    config = write_config(tmp_path / "a.toml", participants)
    code, out, err = await run("watch", "order-9999", "--config", str(config))
    assert (code, out) == (1, "")
    assert err == "status-aggregator: order-9999: no participant has a record of this workflow\n"
    code, _, err = await run("watch", "a/b", "--config", str(config))
    assert code == 2 and "is not allowed" in err and err.count("\n") == 1
    async with running_gateway(gateway_settings(participants)) as gw:
        code, _, err = await run("watch", "order-9999", "--gateway", gw.url)
        assert code == 1 and err.startswith("status-aggregator: HTTP 404: no participant")
        code, _, err = await run("watch", "../x", "--gateway", gw.url)
        assert code == 2 and "HTTP 400" in err
    code, _, err = await run("watch", "x", "--gateway", "http://127.0.0.1:1")
    assert code == 1 and err.startswith("status-aggregator: cannot read") and err.count("\n") == 1
