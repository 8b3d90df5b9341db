"""What the demo shows: how long a status has held, the timeline, each anomaly's verdict
and the summary's counts."""

from __future__ import annotations

from datetime import timedelta

from demo import Summary
from demo._tracker import Tally, Tracker
from demo._view import anomalies_text, held_for, plain_line, spotlight, table, timeline_text
from tests.demo.test_tracker import T0, answer


def test_a_status_holds_since_its_deciding_part_changed() -> None:
    status = answer("order-0001").status
    assert status is not None
    assert held_for(status) == " 3.0s"
    assert held_for(status.model_copy(update={"since": None})) == ""


def test_the_timeline_reads_as_a_time_of_day_then_the_steps_after_it() -> None:
    status = answer("order-0001").status
    assert status is not None
    steps = (
        *status.timeline,
        status.timeline[0].model_copy(
            update={"participant": "inventory", "state": "pending", "at": T0 + timedelta(0, 1.25)}
        ),
    )
    text = timeline_text(status.model_copy(update={"timeline": steps}))
    clock = T0.astimezone().strftime("%H:%M:%S")
    assert text == f"payment captured {clock}.0 -> inventory pending +1.2s"


def test_each_anomaly_is_shown_with_what_the_demo_knows_of_it() -> None:
    tracker = Tracker()
    tracker.placed("order-0001", expected="stuck_after_payment")
    tracker.placed("order-0002")
    tracker.took_effect("order-0001", due=10.0)
    tracker.update(answer("order-0001"), now=1.0)
    assert anomalies_text(tracker, "order-0001").plain == "(staged: stuck_after_payment)"
    tracker.update(answer("order-0001", ("stuck_after_payment", True)), now=2.0)
    tracker.update(
        answer("order-0002", ("shipment_without_stock", True), ("refund_overdue", False)), now=2.0
    )
    assert anomalies_text(tracker, "order-0001").plain == "stuck_after_payment (staged)"
    assert anomalies_text(tracker, "order-0002").plain == (
        "shipment_without_stock (false), refund_overdue (unconfirmed)"
    )
    line = plain_line(tracker, "order-0002")
    assert " order-0002 paid " in line and "for 3.0s" in line
    assert line.endswith(
        "anomaly=shipment_without_stock(false) anomaly=refund_overdue(unconfirmed)"
    )
    assert spotlight(tracker) == "order-0002"  # the latest with an anomaly


def test_older_orders_with_an_anomaly_or_a_staged_fault_stay_in_view() -> None:
    tracker = Tracker()
    tracker.placed("order-0001", expected="stuck_after_payment")
    tracker.took_effect("order-0001", due=10.0)
    tracker.placed("order-0002")
    tracker.update(answer("order-0002", ("shipment_without_stock", False)), now=1.0)
    for n in range(3, 12):
        tracker.placed(f"order-{n:04d}")
        tracker.update(answer(f"order-{n:04d}"), now=1.0)
    no_part = answer("order-0011").status
    assert no_part is not None
    tracker.update(
        answer("order-0011").model_copy(
            update={"http_status": 503, "status": no_part.model_copy(update={"timeline": ()})}
        ),
        now=2.0,
    )

    def rows() -> list[str]:
        return [str(cell) for cell in table(tracker, rows=3).columns[0].cells]

    assert rows() == ["order-0011", "order-0010", "order-0009", "order-0002", "order-0001"]
    assert spotlight(tracker) == "order-0002"  # the latest with an anomaly
    tracker.update(answer("order-0002"), now=3.0)  # the anomaly is gone
    assert rows() == ["order-0011", "order-0010", "order-0009", "order-0001"]  # staged: kept
    assert spotlight(tracker) == "order-0010"  # the newest with a part to show


def test_the_summary_counts_anomalies_by_verdict_and_code() -> None:
    summary = Summary(
        orders=40,
        outcomes={"delivered": 30, "in progress": 10},
        faults={"lost_event": 2, "rogue_event": 1},
        anomalies={
            "refund_after_shipment": Tally(staged=1),
            "shipment_without_stock": Tally(unconfirmed=1),
            "stuck_after_payment": Tally(staged=1, pending=1),
        },
        cache_hits=3,
        cache_misses=1,
        coalesced=0,
        outages=2,
    )
    assert summary.verdicts == Tally(staged=2, pending=1, unconfirmed=1)
    assert summary.lines()[3:8] == [
        "  faults staged: lost_event 2, rogue_event 1",
        "  anomalies: staged 2, missed 0, false 0 (pending 1, unconfirmed 1)",
        "    refund_after_shipment: staged 1",
        "    shipment_without_stock: unconfirmed 1",
        "    stuck_after_payment: staged 1, pending 1",
    ]
