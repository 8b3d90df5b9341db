"""What the demo has seen of each order, read only through the gateway."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from contracts import BatchEntry, WorkflowStatus

TERMINAL = ("delivered", "compensated", "payment_failed")


@dataclass
class Tracker:
    """The latest answer per order, in the order they were placed."""

    order: list[str] = field(default_factory=list)
    latest: dict[str, BatchEntry] = field(default_factory=dict)
    anomalies: set[tuple[str, str]] = field(default_factory=set)  # (workflow id, code)

    def placed(self, workflow_id: str) -> None:
        self.order.append(workflow_id)

    def pending(self, recent: int) -> list[str]:
        """Ids worth asking about: the recent ones and any not yet final (at most 100)."""
        unfinished = [wid for wid in self.order if self.final_status(wid) is None]
        wanted = dict.fromkeys([*self.order[-recent:], *unfinished])
        return list(wanted)[-100:]

    def update(self, entry: BatchEntry) -> bool:
        """Keep the answer; True when the derived status changed."""
        before = self.status_of(entry.workflow_id)
        self.latest[entry.workflow_id] = entry
        if entry.status is not None:
            for anomaly in entry.status.anomalies:
                self.anomalies.add((entry.workflow_id, anomaly.code))
        return self.status_of(entry.workflow_id) != before

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

    def anomaly_counts(self) -> Counter[str]:
        return Counter(code for _, code in self.anomalies)
