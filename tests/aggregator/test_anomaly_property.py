"""A property: anomalies are raised for contradictions, never for a valid history.

Simulated participants follow one of the order choreography's paths, each step
after a random delay; requests come at random moments, parts are cached for a
random time to live (and each participant may say a shorter ``max-age``, so
parts of one answer are fetched at different moments), and participants go
dark at random. Whatever the timing:

- a valid history raises no confirmed anomaly, and an unconfirmed one only while
  a participant it names cannot be asked again (it is dark);
- a planted contradiction (a participant acting out of order, after which the
  workflow stops) is raised, confirmed, in every answer from one time to live
  after it on, whenever the participants it names can be asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from aggregator import OutboundRequest, TransportFailure, TransportResponse
from aggregator.testing import ManualClock
from contracts import ErrorKind, Outcome
from tests.helpers import JSON, NOT_FOUND, Reply, body, make_aggregator

START = 1_767_225_600.0  # the manual clock's start
PATHS = {
    "delivered": [
        ("payment", "pending"),
        ("payment", "authorized"),
        ("payment", "captured"),
        ("inventory", "pending"),
        ("inventory", "reserved"),
        ("shipping", "pending"),
        ("shipping", "scheduled"),
        ("shipping", "in_transit"),
        ("shipping", "delivered"),
    ],
    "payment_failed": [
        ("payment", "pending"),
        ("payment", "authorized"),
        ("payment", "failed"),
    ],
    "compensated": [
        ("payment", "pending"),
        ("payment", "authorized"),
        ("payment", "captured"),
        ("inventory", "pending"),
        ("inventory", "out_of_stock"),
        ("payment", "refunded"),
        ("inventory", "released"),
    ],
}
ABSENT = None


@dataclass
class History:
    """Each participant's states over time: (seconds since the start, state, version)."""

    changes: dict[str, list[tuple[float, str, int]]]

    def state(self, participant: str, at: float) -> tuple[float, str, int] | None:
        shown = None
        for change in self.changes[participant]:
            if change[0] <= at:
                shown = change
        return shown

    def add(self, participant: str, at: float, state: str) -> None:
        held = self.changes[participant]
        held.append((at, state, len(held) + 1))


def build(path: str, delays: list[float], steps: int) -> History:
    history = History({"payment": [], "inventory": [], "shipping": []})
    at = 0.0
    for (participant, state), delay in zip(PATHS[path][:steps], delays, strict=False):
        at += delay
        history.add(participant, at, state)
    return history


def plant(history: History, at: float) -> tuple[str, set[str], str] | None:
    """A participant acting out of order at ``at``, if the states then allow one, and
    the workflow stopped from then on: (participant, rogue state, expected codes)."""
    for changes in history.changes.values():
        changes[:] = [change for change in changes if change[0] <= at]

    def now(participant: str) -> str | None:
        change = history.state(participant, at)
        return None if change is None else change[1]

    payment, inventory, shipping = now("payment"), now("inventory"), now("shipping")
    if payment == "captured" and shipping in ("in_transit", "delivered"):
        history.add("payment", at, "refunded")  # a refund replayed from another order
        return "payment", {"refund_after_shipment"}, "refunded"
    if shipping is ABSENT and payment == "captured" and inventory != "reserved":
        history.add("shipping", at, "scheduled")  # a StockReserved meant for another order
        return "shipping", {"shipment_without_stock"}, "scheduled"
    if shipping is ABSENT and payment in ("pending", "authorized", "failed"):
        history.add("shipping", at, "scheduled")
        codes = {"shipment_before_payment"}
        if inventory is ABSENT:
            codes.add("shipment_without_stock")
        return "shipping", codes, "scheduled"
    return None


def dark(outages: dict[str, list[tuple[float, float]]], participant: str, at: float) -> bool:
    return any(start <= at < start + length for start, length in outages[participant])


NAMES = ("payment", "inventory", "shipping")
outage_windows = st.lists(st.tuples(st.floats(0, 20), st.floats(0.05, 4)), max_size=3)


FALSE_ALARM = {  # inventory's part cached as pending, shipping's live as scheduled
    "path": "delivered",
    "delays": [0, 0, 0, 0.05, 0.3, 0.05, 0.05, 2.5, 2.5],
    "steps": 9,
    "gaps": [0.1, 0.4],
    "ttl_ms": 2000,
    "terminal_long": True,
    "plant_fraction": None,
    "max_age": {"payment": None, "inventory": None, "shipping": 0},
}
NO_DARK: dict[str, list[tuple[float, float]]] = {
    name: [] for name in ("payment", "inventory", "shipping")
}


@settings(max_examples=300, deadline=None)
@example(**FALSE_ALARM, outages=NO_DARK)  # withdrawn after asking inventory again
@example(**FALSE_ALARM, outages={**NO_DARK, "inventory": [(0.45, 1.5)]})  # left unconfirmed
@given(
    path=st.sampled_from(sorted(PATHS)),
    delays=st.lists(st.sampled_from([0, 0.05, 0.3, 0.8, 1.5, 2.5]), min_size=9, max_size=9),
    steps=st.integers(1, 9),
    gaps=st.lists(st.sampled_from([0.001, 0.05, 0.1, 0.3, 0.7, 1.5]), min_size=1, max_size=80),
    ttl_ms=st.sampled_from([150, 500, 2000]),
    terminal_long=st.booleans(),
    outages=st.fixed_dictionaries(dict.fromkeys(NAMES, outage_windows)),
    plant_fraction=st.none() | st.floats(0, 1),
    max_age=st.fixed_dictionaries(dict.fromkeys(NAMES, st.sampled_from([None, 0, 1]))),
)
async def test_anomalies_are_raised_for_contradictions_only(
    path: str,
    delays: list[float],
    steps: int,
    gaps: list[float],
    ttl_ms: int,
    terminal_long: bool,
    outages: dict[str, list[tuple[float, float]]],
    plant_fraction: float | None,
    max_age: dict[str, int | None],
) -> None:
    history = build(path, delays, steps)
    span = max((c[0] for changes in history.changes.values() for c in changes), default=0.0)
    planted_at = None if plant_fraction is None else plant_fraction * (span + 1)
    planted = None if planted_at is None else plant(history, planted_at)
    clock = ManualClock()
    now = [0.0]  # the moment asked about, in seconds since the start

    async def transport(request: OutboundRequest) -> Reply:
        participant = request.url.split("//", 1)[1].split(".", 1)[0]
        at = now[0]
        if dark(outages, participant, at):
            return TransportFailure(Outcome.UNAVAILABLE, ErrorKind.CONNECTION, "refused", True)
        said = max_age[participant]  # each participant's own caching, as it says
        headers = JSON if said is None else {**JSON, "cache-control": f"max-age={said}"}
        change = history.state(participant, at)
        if change is None:
            return TransportResponse(404, headers, NOT_FOUND.body)
        changed, state, version = change
        updated = datetime.fromtimestamp(START + changed, UTC).isoformat()
        return TransportResponse(
            200, headers, body(participant, "o-1", state, version, updated_at=updated)
        )

    cache = {"ttl_ms": ttl_ms, "terminal_ttl_ms": 10_000 if terminal_long else ttl_ms}
    protection = {"retry": False, "breaker_threshold": 1_000_000}
    async with make_aggregator(
        transport,  # type: ignore[arg-type]
        clock,
        cache=cache,
        participants={
            name: {"url": f"http://{name}.test/x/{{workflow_id}}", "protection": protection}
            for name in NAMES
        },
    ) as agg:
        moment = 0.0
        for gap in gaps:  # the requests, one after another
            moment += gap
            clock.now, now[0] = START + moment, moment
            status = await agg.status("o-1")
            down = {name for name in NAMES if dark(outages, name, moment)}
            raised = {anomaly.code for anomaly in status.anomalies}
            valid_then = planted is None or planted_at is None or moment < planted_at
            for anomaly in status.anomalies:
                if valid_then:
                    event("an unconfirmed anomaly while a participant is dark")
                    # a valid history: only an anomaly left unconfirmed by a dark participant
                    assert not anomaly.confirmed, (moment, anomaly, status)
                    assert down & set(anomaly.participants), (moment, anomaly, status)
            if planted is not None and planted_at is not None:
                participant, codes, _ = planted
                # the participants the contradiction rests on, all reachable
                named = {"payment", "shipping"} if "refund_after_shipment" in codes else set()
                named |= {"shipping", participant}
                named |= {"inventory"} if "shipment_without_stock" in codes else set()
                named |= {"payment"} if "shipment_before_payment" in codes else set()
                settled = moment >= planted_at + ttl_ms / 1000
                if settled and not down & named:
                    event("a planted contradiction checked")
                    assert codes <= raised, (moment, planted, status)
                    assert all(a.confirmed for a in status.anomalies if a.code in codes), (
                        moment,
                        planted_at,
                        [(a.code, a.confirmed) for a in status.anomalies],
                        [
                            (n, p.state, p.source.value if p.source else None, p.age_ms)
                            for n, p in status.participants.items()
                        ],
                        outages,
                    )
        if sum(agg.anomalies.withdrawn_by.values()):
            event("a false alarm withdrawn after asking again")


def test_the_history_builder_follows_the_paths() -> None:
    rng = random.Random(3)
    history = build("compensated", [rng.uniform(0, 1) for _ in range(9)], 9)
    assert [state for _, state, _ in history.changes["payment"]] == [
        "pending",
        "authorized",
        "captured",
        "refunded",
    ]
    assert [version for _, _, version in history.changes["inventory"]] == [1, 2, 3]
