"""The demo's bookkeeping: anomalies raised against faults staged, by hand-made answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts import Anomaly, BatchEntry, Step, WorkflowStatus
from demo._tracker import Tally, Tracker, total

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def answer(workflow_id: str, *anomalies: tuple[str, bool], status: str = "paid") -> BatchEntry:
    """An answer with the given (code, confirmed) anomalies."""
    return BatchEntry(
        workflow_id=workflow_id,
        http_status=200,
        status=WorkflowStatus(
            workflow_id=workflow_id,
            workflow="order_fulfilment",
            status=status,
            complete=True,
            derived_from=("payment",),
            anomalies=tuple(
                Anomaly(code=code, message="-", participants=("payment",), confirmed=confirmed)
                for code, confirmed in anomalies
            ),
            since=T0,
            timeline=(Step(participant="payment", state="captured", at=T0),),
            generated_at=T0 + timedelta(seconds=3),
            participants={},
        ),
    )


def staged_tracker() -> Tracker:
    tracker = Tracker()
    tracker.placed("order-0001", expected="stuck_after_payment")
    tracker.placed("order-0002", expected="refund_after_shipment")
    tracker.placed("order-0003")
    return tracker


def test_a_staged_anomaly_raised_in_time_is_staged() -> None:
    tracker = staged_tracker()
    tracker.took_effect("order-0001", due=10.0)
    tracker.update(answer("order-0001", ("stuck_after_payment", True)), now=9.0)
    tracker.update(answer("order-0001", ("stuck_after_payment", True)), now=11.0)  # seen again
    tallies = tracker.tally(now=30.0)
    assert tallies["stuck_after_payment"] == Tally(staged=1)
    assert tallies["refund_after_shipment"] == Tally(pending=1)  # its fault has not happened


def test_a_staged_anomaly_not_raised_by_its_time_is_missed_and_pending_before() -> None:
    tracker = staged_tracker()
    tracker.took_effect("order-0001", due=10.0)
    assert tracker.tally(now=9.9)["stuck_after_payment"] == Tally(pending=1)
    assert tracker.tally(now=10.1)["stuck_after_payment"] == Tally(missed=1)
    tracker.update(answer("order-0001", ("stuck_after_payment", True)), now=12.0)
    assert tracker.tally(now=12.0)["stuck_after_payment"] == Tally(missed=1)  # found too late


def test_only_a_confirmed_anomaly_finds_a_staged_one() -> None:
    tracker = staged_tracker()
    tracker.took_effect("order-0001", due=10.0)
    tracker.update(answer("order-0001", ("stuck_after_payment", False)), now=5.0)
    assert tracker.tally(now=11.0) == {
        "refund_after_shipment": Tally(pending=1),
        "stuck_after_payment": Tally(missed=1),  # not counted as unconfirmed: it was staged
    }
    assert tracker.awaits_anomaly("order-0001")


def test_a_confirmed_anomaly_nothing_staged_is_false_an_unconfirmed_one_is_set_apart() -> None:
    tracker = staged_tracker()
    tracker.update(answer("order-0003", ("shipment_without_stock", True)), now=1.0)
    tracker.update(answer("order-0003", ("shipment_before_payment", False)), now=1.0)
    # On a staged order, another code than the staged one is false too.
    tracker.update(answer("order-0001", ("refund_overdue", True)), now=1.0)
    tallies = tracker.tally(now=2.0)
    assert tallies["shipment_without_stock"] == Tally(false=1)
    assert tallies["shipment_before_payment"] == Tally(unconfirmed=1)
    assert tallies["refund_overdue"] == Tally(false=1)
    assert total(tallies) == Tally(false=2, pending=2, unconfirmed=1)
    assert tracker.verdict("order-0003", "shipment_without_stock", True) == "false"
    assert tracker.verdict("order-0003", "shipment_before_payment", False) == "unconfirmed"
    assert tracker.verdict("order-0001", "stuck_after_payment", True) == "staged"


def test_an_unconfirmed_anomaly_later_confirmed_counts_once_as_false() -> None:
    tracker = staged_tracker()
    tracker.update(answer("order-0003", ("shipment_without_stock", False)), now=1.0)
    tracker.update(answer("order-0003", ("shipment_without_stock", True)), now=2.0)
    assert tracker.tally(now=3.0)["shipment_without_stock"] == Tally(false=1)


def test_the_orders_asked_about_put_the_recent_and_the_awaited_first() -> None:
    tracker = staged_tracker()
    tracker.took_effect("order-0002", due=10.0)
    for n in range(4, 30):
        tracker.placed(f"order-{n:04d}")
        tracker.update(answer(f"order-{n:04d}", status="delivered"), now=1.0)
    tracker.update(answer("order-0002", status="delivered"), now=1.0)
    tracker.update(answer("order-0003", status="delivered"), now=1.0)
    tracker.update(
        answer("order-0004", ("shipment_without_stock", False), status="delivered"), now=1.0
    )
    # In the order placed: the unfinished order-0001 (no answer yet), order-0002 whose
    # refund is awaited, order-0004 with an anomaly, the recent ones; not order-0003:
    # final, nothing staged, nothing raised.
    recent = ["order-0027", "order-0028", "order-0029"]
    assert tracker.pending(recent=3) == ["order-0001", "order-0002", "order-0004", *recent]
    assert tracker.pending(recent=3, limit=4) == ["order-0002", *recent]
    tracker.update(
        answer("order-0002", ("refund_after_shipment", True), status="delivered"), now=2.0
    )
    # Found: order-0002 is watched like any order with an anomaly, after the unfinished.
    assert tracker.pending(recent=3, limit=5) == ["order-0001", "order-0004", *recent]
    assert tracker.pending(recent=3, limit=4) == ["order-0001", *recent]


def test_words_name_only_what_happened() -> None:
    assert Tally(staged=2, pending=1).words() == "staged 2, pending 1"
    assert Tally() + Tally(missed=1) == Tally(missed=1)


def test_an_update_says_when_the_status_or_its_anomalies_changed() -> None:
    tracker = staged_tracker()
    assert tracker.update(answer("order-0001"), now=1.0)
    assert not tracker.update(answer("order-0001"), now=2.0)
    assert tracker.update(answer("order-0001", ("stuck_after_payment", False)), now=3.0)
    assert tracker.update(answer("order-0001", ("stuck_after_payment", True)), now=4.0)
    assert tracker.update(answer("order-0001", status="stock_reserved"), now=5.0)
