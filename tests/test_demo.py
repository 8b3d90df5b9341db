"""The demo, as `make demo` runs it, and its live view."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
from pathlib import Path

from demo import Demo, Options

LOST_EVENT_CODES = {"stuck_after_payment", "stuck_after_reservation", "refund_overdue"}

ROOT = Path(__file__).parents[1]
FAST = [
    "--duration", "3",
    "--gateway-port", "0", "--payment-port", "0", "--inventory-port", "0", "--shipping-port", "0",
    "--min-delay", "0.05", "--max-delay", "0.15", "--order-every", "0.2",
    "--outage-every", "1", "--outage-for", "0.5",
]  # fmt: skip


def test_make_demo_runs_and_ends_with_a_summary() -> None:
    result = subprocess.run(
        ["make", "-s", "demo", f"DEMO_ARGS={' '.join(FAST)}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "gateway http://127.0.0.1:" in out
    assert re.search(r"^page: http://127\.0\.0\.1:\d+/ui\?ids_url=/demo/orders$", out, re.M)
    assert "status-aggregator status order-0001 --gateway http://127.0.0.1:" in out
    assert "outage: payment goes dark for 0.5 s" in out
    assert "outage: payment answers again" in out
    assert " order-0001 " in out
    summary = out[out.index("summary") :].splitlines()
    assert summary[1].startswith("  orders placed: ")
    assert int(summary[1].split(": ")[1]) >= 5
    assert summary[3].startswith("  faults staged: ")
    assert summary[4].startswith("  anomalies: staged ")
    assert any(line.startswith("  cache hit ratio: ") for line in summary)


def test_a_taken_port_is_named_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for command, prog in (
            ("demo", "status-aggregator demo"),
            ("participants", "status-aggregator participants"),
        ):
            args = [
                sys.executable,
                "-m",
                "aggregator",
                command,
                "--payment-port",
                port,
                "--inventory-port",
                "0",
                "--shipping-port",
                "0",
            ]
            result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 1
            assert result.stderr == (
                f"{prog}: cannot listen on 127.0.0.1:{port} for payment: address already in use\n"
            )


async def test_the_live_view_shows_orders_parts_and_outages() -> None:
    out = io.StringIO()
    options = Options(
        duration=2.0,
        gateway_port=0,
        payment_port=0,
        inventory_port=0,
        shipping_port=0,
        min_delay=0.05,
        max_delay=0.1,
        order_every=0.2,
        outage_every=0.8,
        outage_for=0.6,
        refresh_every=0.2,
    )
    summary = await Demo(options, out, live=True).run()
    screen = out.getvalue()
    assert "Choreography demo" in screen and "workflow" in screen and "shipping" in screen
    assert "outage: payment has gone dark" in screen
    assert "/ui?ids_url=/demo/orders" in screen
    assert "order-0001" in screen
    assert summary.orders >= 5 and summary.outages >= 1
    assert summary.cache_hits + summary.cache_misses > 0


async def test_a_minute_of_outages_finds_every_staged_anomaly_and_no_false_one() -> None:
    """Every anomaly the demo sees is one it staged, and each staged one shows in time,
    while participants keep going dark for longer than an order takes to count as stuck.
    (The demo samples the orders it watches every refresh: a false anomaly that came
    and went between two looks would not be seen.)"""
    options = Options(
        duration=62.0,
        seed=23,  # by order 62: a rogue event, and each of the three lost events
        gateway_port=0,
        payment_port=0,
        inventory_port=0,
        shipping_port=0,
        min_delay=0.1,
        max_delay=0.4,  # an order is stuck after 2.8 s
        order_every=0.4,
        outage_every=6.0,
        outage_for=3.0,
        refresh_every=0.25,
    )
    chance, placed = options.chance(), [f"order-{n:04d}" for n in range(1, 63)]
    lost = [i for i in placed if chance.lost_event(i)]
    assert {chance.expected_anomaly(i) for i in lost} == LOST_EVENT_CODES
    assert any(chance.rogue_event(i) for i in placed)
    out = io.StringIO()
    summary = await Demo(options, out, live=False).run()
    report = "\n".join(summary.lines())
    verdicts = summary.verdicts
    assert (verdicts.false, verdicts.missed) == (0, 0), report
    for code in (*sorted(LOST_EVENT_CODES), "refund_after_shipment"):
        assert summary.anomalies[code].staged >= 1, report
    assert summary.faults["lost_event"] >= 3 and summary.faults["rogue_event"] >= 1, report
    assert summary.outages >= 6, report
    assert "anomaly=refund_after_shipment(staged)" in out.getvalue()


async def test_a_crash_outage_kills_a_process_and_its_parts_catch_up_after_the_restart() -> None:
    options = Options(
        duration=7.0,
        gateway_port=0,
        payment_port=0,
        inventory_port=0,
        shipping_port=0,
        min_delay=0.05,
        max_delay=0.2,
        order_every=0.2,
        outage_every=1.0,
        outage_for=3.0,
        refresh_every=0.2,
        outage="crash",
    )
    out = io.StringIO()
    summary = await Demo(options, out, live=False).run()
    lines = out.getvalue().splitlines()
    killed = lines.index("outage: payment killed (SIGKILL) for 3 s")
    restarted = lines.index("outage: payment restarted; it catches up on the events it missed")
    down = [line for line in lines[killed:restarted] if " order-" in line]
    after = [line for line in lines[restarted:] if " order-" in line]
    # Stale or missing while its process is dead: once a refresh has shown it so
    # (that refresh began after the kill; the views are read one refresh at a time),
    # never live again until the restart; live once back.
    gone = [i for i, line in enumerate(down) if re.search(r"payment=(\S+ stale|missing)", line)]
    assert gone, down
    assert not any(re.search(r"payment=\S+ live", line) for line in down[gone[0] :])
    assert any(re.search(r"payment=\S+ live", line) for line in after)
    assert summary.outages >= 1


def test_trace_prints_the_order_s_spans_from_every_process_as_a_tree() -> None:
    args = [sys.executable, "-m", "aggregator", "demo", *FAST, "--duration", "4",
            "--trace", "order-0001", "--plain"]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    tree = result.stdout[result.stdout.index("trace of order-0001") :].splitlines()
    assert tree[1].startswith("  place order [demo]  +0 ms, ")
    assert tree[2].startswith("  └─ publish OrderPlaced [shop-front]  +")
    assert tree[3].startswith("     └─ process OrderPlaced [payment]  +")  # another process
    assert any(line.startswith("status requests about order-0001: ") for line in tree)
    assert any("GET payment query [payment]" in line for line in tree)
    assert "order-0002" not in "\n".join(tree)


def test_trace_refuses_an_id_the_demo_never_places() -> None:
    args = [sys.executable, "-m", "aggregator", "demo", "--trace", "bad id/.."]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr == (
        "status-aggregator demo: --trace takes the id of an order the demo places,"
        " like order-0001, not 'bad id/..'\n"
    )


def test_replicas_share_parts_through_a_valkey_the_demo_starts() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "demo", *FAST, "--replicas", "2", "--bus", "memory",
         "--plain"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^valkey valkey://127\.0\.0\.1:\d+/0: parts shared by 2 gateway", out, re.M)
    assert re.search(r"^gateway replica http://127\.0\.0\.1:\d+ \(another process\)$", out, re.M)
    # The view reads through each gateway in turn: the demo's own gateway serves
    # parts the replica fetched.
    shared = re.search(
        r"^  parts the demo.s own gateway read from Valkey, fetched by another process: (\d+)",
        out,
        re.M,
    )
    assert shared is not None and int(shared.group(1)) > 0
