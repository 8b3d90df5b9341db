"""What a stage of a participant's pipeline is asked, and how it answers.

A participant's part is produced by a pipeline of stages composed once, at
start-up (``_pipeline``): fresh cache -> coalescing -> last good part ->
interpret -> protection -> transport. Each stage takes the next one as an
argument and is called the same way: with an ``Ask`` it answers a ``Part`` at once
when it can (a fresh part, a refusal), else an awaitable of one. Answering at
once is what keeps a cache hit or an open circuit free of tasks and awaits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from contracts import Anomaly

from ._ids import url_segment
from ._part import Part

Key = tuple[str, str]  # (scope, workflow id): the cache's key, and the coalescing's


class Ask:
    """One participant's part of one workflow, wanted for one request. Treat it as
    immutable (a frozen dataclass costs more to make than a stage's own work)."""

    __slots__ = ("_segment", "deadline", "headers", "key")

    def __init__(self, key: Key, deadline: float, headers: Mapping[str, str]) -> None:
        self.key = key
        self.deadline = deadline  # event-loop time by which the request must be answered
        self.headers = headers  # sent with the call, if one is made
        self._segment: str | None = None

    @property
    def workflow_id(self) -> str:
        return self.key[1]

    @property
    def segment(self) -> str:
        """The id as one URL path segment, encoded once for all participants."""
        segment = self._segment
        if segment is None:
            segment = self._segment = url_segment(self.key[1])
        return segment


Stage = Callable[[Ask], "Part | Awaitable[Part]"]


class Observer(Protocol):
    """Told about every upstream call as it ends (metrics, tracing). Must not block."""

    def fetched(self, participant: str, part: Part, seconds: float) -> None: ...


@dataclass(slots=True)
class ParticipantStats:
    """Counters since start; read them, never write them.

    ``fetches`` counts calls started (an open circuit refuses at once, without
    one), ``retries`` the calls made again, ``coalesced`` callers who shared one;
    ``cache_hits``, ``stale_served`` and ``outcomes`` count parts served. With a
    shared store, ``shared_hits`` counts parts another process fetched, read from
    it, and ``lease_waits`` the times this process waited for another's call.
    """

    fetches: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    stale_served: int = 0
    retries: int = 0
    shared_hits: int = 0
    lease_waits: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class AnomalyCounts:
    """Anomalies since start: ``raised`` by (code, confirmed), counted in each answer
    made afresh (not in one served again from its rendering), and ``withdrawn`` by
    code, when asking a participant again made one disappear (it is then not in
    ``raised``). Read ``raised_by`` and ``withdrawn_by``; only the aggregator counts."""

    raised_by: Counter[tuple[str, bool]] = field(default_factory=Counter)
    withdrawn_by: Counter[str] = field(default_factory=Counter)

    def raised(self, anomalies: Iterable[Anomaly]) -> None:
        for anomaly in anomalies:
            self.raised_by[(anomaly.code, anomaly.confirmed)] += 1

    def withdrawn(self, before: Iterable[Anomaly], after: Iterable[Anomaly]) -> None:
        """Count the codes in ``before`` that ``after`` no longer has."""
        remaining = {anomaly.code for anomaly in after}
        for anomaly in before:
            if anomaly.code not in remaining:
                self.withdrawn_by[anomaly.code] += 1
