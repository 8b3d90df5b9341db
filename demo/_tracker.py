"""What the demo has seen of each order, read only through the gateway, and how the
anomalies it saw compare with the faults it staged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field, fields

from contracts import BatchEntry, WorkflowStatus

TERMINAL = ("delivered", "compensated", "payment_failed")


@dataclass(frozen=True, slots=True)
class Tally:
    """One anomaly code's verdicts.

    ``staged``: staged and raised, confirmed, in time. ``missed``: staged, and not
    raised confirmed by the time it should have been. ``false``: raised, confirmed,
    where nothing (or something else) was staged. ``pending``: staged, not raised
    yet, with time left (or its fault has not happened yet). ``unconfirmed``: raised
    only unconfirmed where it was not staged: a participant could not be asked again,
    so it may be an outage's artefact.
    """

    staged: int = 0
    missed: int = 0
    false: int = 0
    pending: int = 0
    unconfirmed: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def words(self) -> str:
        """The verdicts counted, e.g. ``staged 3, pending 1``."""
        return ", ".join(
            f"{verdict.name} {n}" for verdict in fields(self) if (n := getattr(self, verdict.name))
        )


def total(tallies: Mapping[str, Tally]) -> Tally:
    return sum(tallies.values(), Tally())


@dataclass
class Tracker:
    """The latest answer per order, in the order they were placed, and the truth
    about each: which anomaly its staged fault should raise, and by when.

    Times (``now``, ``due``) are the demo's monotonic seconds.

    >>> tracker = Tracker()
    >>> tracker.placed("order-0001", expected="stuck_after_payment")
    >>> tracker.took_effect("order-0001", due=20.0)
    >>> tracker.tally(now=25.0)["stuck_after_payment"].missed
    1
    """

    order: list[str] = field(default_factory=list)
    latest: dict[str, BatchEntry] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)  # workflow id -> staged code
    due: dict[str, float] = field(default_factory=dict)  # when the staged code must show
    found: dict[tuple[str, str], float] = field(default_factory=dict)  # confirmed, first seen
    unconfirmed: set[tuple[str, str]] = field(default_factory=set)

    def placed(self, workflow_id: str, expected: str | None = None) -> None:
        self.order.append(workflow_id)
        if expected is not None:
            self.expected[workflow_id] = expected

    def took_effect(self, workflow_id: str, due: float) -> None:
        """The staged fault has happened: its anomaly must be raised by ``due``."""
        self.due.setdefault(workflow_id, due)

    def struck(self, workflow_id: str) -> bool:
        """Whether this order's staged fault has happened."""
        return workflow_id in self.due

    def pending(self, recent: int, limit: int = 100) -> list[str]:
        """Ids worth asking about, in the order they were placed: the recent ones, any
        whose staged anomaly has not been seen yet, any not yet final, then any with a
        staged fault or an anomaly (the newest of each first, at most ``limit``)."""
        watched = [
            wid
            for wid in self.order
            if self.struck(wid) or ((w := self.workflow(wid)) is not None and w.anomalies)
        ]
        groups = (
            self.order[-recent:],
            [wid for wid in self.due if self.awaits_anomaly(wid)],
            [wid for wid in self.order if self.final_status(wid) is None],
            watched,
        )
        chosen: dict[str, None] = {}
        for group in groups:
            for wid in reversed(group):
                if len(chosen) == limit:
                    break
                chosen.setdefault(wid)
        return [wid for wid in self.order if wid in chosen]

    def awaits_anomaly(self, workflow_id: str) -> bool:
        code = self.expected.get(workflow_id)
        return code is not None and (workflow_id, code) not in self.found

    def update(self, entry: BatchEntry, now: float) -> bool:
        """Keep the answer; True when the derived status or its anomalies changed."""
        before = self._shown(entry.workflow_id)
        self.latest[entry.workflow_id] = entry
        if entry.status is not None:
            for anomaly in entry.status.anomalies:
                key = (entry.workflow_id, anomaly.code)
                if anomaly.confirmed:
                    self.found.setdefault(key, now)
                else:
                    self.unconfirmed.add(key)
        return self._shown(entry.workflow_id) != before

    def _shown(self, workflow_id: str) -> tuple[str | None, tuple[tuple[str, bool], ...]]:
        workflow = self.workflow(workflow_id)
        raised = () if workflow is None else workflow.anomalies
        return self.status_of(workflow_id), tuple((a.code, a.confirmed) for a in raised)

    def verdict(self, workflow_id: str, code: str, confirmed: bool) -> str:
        """What an anomaly raised for this order is: ``unconfirmed`` (the gateway could
        not check it), else ``staged`` (the order's fault raises that code; whether in
        time is ``tally``'s to say) or ``false``."""
        if not confirmed:
            return "unconfirmed"
        return "staged" if self.expected.get(workflow_id) == code else "false"

    def tally(self, now: float) -> dict[str, Tally]:
        """Each code's verdicts as of ``now``."""
        counts: dict[str, Tally] = {}

        def add(code: str, **one: int) -> None:
            counts[code] = counts.get(code, Tally()) + Tally(**one)

        for workflow_id, code in self.expected.items():
            seen = self.found.get((workflow_id, code))
            due = self.due.get(workflow_id)
            if seen is not None and (due is None or seen <= due):
                add(code, staged=1)
            elif due is not None and (seen is not None or now > due):
                add(code, missed=1)
            else:
                add(code, pending=1)
        for workflow_id, code in self.found:
            if self.expected.get(workflow_id) != code:
                add(code, false=1)
        for workflow_id, code in self.unconfirmed - self.found.keys():
            if self.expected.get(workflow_id) != code:
                add(code, unconfirmed=1)
        return dict(sorted(counts.items()))

    def status_of(self, workflow_id: str) -> str | None:
        entry = self.latest.get(workflow_id)
        if entry is None:
            return None
        if entry.http_status == 404:
            return "no record yet"
        if entry.http_status == 503:
            return "no answer"
        return entry.status.status if entry.status is not None else "invalid id"

    def final_status(self, workflow_id: str) -> str | None:
        status = self.status_of(workflow_id)
        return status if status in TERMINAL else None

    def workflow(self, workflow_id: str) -> WorkflowStatus | None:
        entry = self.latest.get(workflow_id)
        return entry.status if entry is not None else None

    def outcomes(self) -> Counter[str]:
        return Counter(self.final_status(wid) or "in progress" for wid in self.order)
