"""Prometheus metrics: the gateway's requests and each participant's calls, for the
whole service even when several worker processes serve it.

Observations on the hot path are a few list increments in the process that made
them (prometheus-client's Counter and Histogram take a lock on every increment,
about a microsecond each, which a single-threaded event loop does not need). At
scrape time they become one ``Counts`` value; with workers sharing a directory
(``_workers``), the scraped worker adds the others' latest counts to its own.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aggregator import BreakerState, Part, StatusAggregator, __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The tables a worker hands to another, by name: counters (and gauges) summed
# label by label, histograms bucket by bucket.
_COUNTER_TABLES = ("requests", "participants", "parts", "circuits", "anomalies", "withdrawn")
_HISTOGRAM_TABLES = ("latency", "calls")
_TABLES = (*_COUNTER_TABLES, *_HISTOGRAM_TABLES)
_PARTICIPANT_COUNTERS = {
    "cache_hits": ("Parts served from the fresh cache.", "cache_hits"),
    "cache_misses": ("Upstream calls started (cache misses).", "fetches"),
    "coalesced_waits": ("Callers that joined a call already in flight.", "coalesced"),
    "stale_served": ("Parts served stale because a live fetch failed.", "stale_served"),
    "retries": ("Retries after connection errors and retryable statuses.", "retries"),
    "shared_hits": ("Parts another process fetched, read from the shared store.", "shared_hits"),
    "lease_waits": ("Waits for another process's call to the participant.", "lease_waits"),
}

Labels = tuple[str, ...]


def _new_buckets() -> list[float]:
    return [0.0] * (len(_LATENCY_BUCKETS) + 2)  # buckets..., +Inf, sum


@dataclass
class Counts:
    """One process's counts (or several processes', summed): plain data, so a worker
    can hand it to another as JSON."""

    requests: dict[Labels, int] = field(default_factory=dict)  # (route, method, status)
    latency: dict[Labels, list[float]] = field(default_factory=dict)  # (route,)
    calls: dict[Labels, list[float]] = field(default_factory=dict)  # (participant, outcome)
    participants: dict[Labels, int] = field(default_factory=dict)  # (counter, participant)
    parts: dict[Labels, int] = field(default_factory=dict)  # (participant, outcome)
    circuits: dict[Labels, int] = field(default_factory=dict)  # (participant, state): workers
    in_flight: int = 0
    watchers: int = 0  # event streams and library watchers open now
    watched: int = 0  # workflows being watched now (one poller each)
    alone: int = 0  # processes whose shared store is unavailable now
    anomalies: dict[Labels, int] = field(default_factory=dict)  # (code, confirmed)
    withdrawn: dict[Labels, int] = field(default_factory=dict)  # (code,)

    def add(self, other: Counts) -> None:
        for name in _COUNTER_TABLES:
            mine: dict[Labels, int] = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + value
        for name in _HISTOGRAM_TABLES:
            mine_h: dict[Labels, list[float]] = getattr(self, name)
            for key, buckets in getattr(other, name).items():
                held = mine_h.setdefault(key, _new_buckets())
                for index, observed in enumerate(buckets):
                    held[index] += observed
        self.in_flight += other.in_flight
        self.watchers += other.watchers
        self.watched += other.watched
        self.alone += other.alone

    def without_gauges(self) -> Counts:
        """The counters alone: what a worker that has exited still counts for."""
        return replace(self, circuits={}, in_flight=0, watchers=0, watched=0, alone=0)

    def to_json(self) -> dict[str, Any]:
        return {
            name: [[*key, value] for key, value in getattr(self, name).items()] for name in _TABLES
        } | {
            "in_flight": self.in_flight,
            "watchers": self.watchers,
            "watched": self.watched,
            "alone": self.alone,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        """Counts another worker wrote; ValueError when they are not in this version's
        shape (an older or a foreign file), which a scrape must never fail on."""

        def number(value: object) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        def table(name: str) -> dict[Labels, Any]:
            rows = {tuple(str(label) for label in row[:-1]): row[-1] for row in data[name]}
            histogram = name in _HISTOGRAM_TABLES
            for value in rows.values():
                if histogram and not (
                    isinstance(value, list)
                    and len(value) == len(_new_buckets())
                    and all(map(number, value))
                ):
                    raise ValueError(f"{name}: not this version's buckets")
                if not histogram and not number(value):
                    raise ValueError(f"{name}: not a number")
            return rows

        return cls(
            **{name: table(name) for name in _TABLES},
            in_flight=int(data["in_flight"]),
            watchers=int(data["watchers"]),
            watched=int(data["watched"]),
            alone=int(data.get("alone", 0)),
        )


def _observe(histogram: dict[Labels, list[float]], key: Labels, seconds: float) -> None:
    buckets = histogram.get(key)
    if buckets is None:
        buckets = histogram[key] = _new_buckets()
    buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
    buckets[-1] += seconds


def _histogram(
    name: str, help_text: str, labels: list[str], data: dict[Labels, list[float]]
) -> Metric:
    family = HistogramMetricFamily(name, help_text, labels=labels)
    bounds = [*(str(b) for b in _LATENCY_BUCKETS), "+Inf"]
    for key, buckets in sorted(data.items()):
        cumulative = list(accumulate(buckets[:-1]))
        family.add_metric(list(key), list(zip(bounds, cumulative, strict=True)), buckets[-1])
    return family


def _table(
    kind: type[CounterMetricFamily | GaugeMetricFamily],
    name: str,
    help_text: str,
    labels: list[str],
    rows: dict[Labels, int],
) -> Metric:
    family = kind(name, help_text, labels=labels)
    for key, value in sorted(rows.items()):
        family.add_metric(list(key), value)
    return family


def families(counts: Counts) -> Iterator[Metric]:
    """The metric families of ``counts``."""
    yield _table(
        CounterMetricFamily,
        "aggregator_http_requests",
        "HTTP requests answered.",
        ["route", "method", "status"],
        counts.requests,
    )
    yield _histogram(
        "aggregator_http_request_duration_seconds",
        "Time to answer an HTTP request.",
        ["route"],
        counts.latency,
    )
    yield _histogram(
        "aggregator_participant_call_duration_seconds",
        "Upstream calls to participants, by outcome.",
        ["participant", "outcome"],
        counts.calls,
    )
    in_flight = GaugeMetricFamily("aggregator_http_requests_in_flight", "Requests being answered.")
    in_flight.add_metric([], counts.in_flight)
    yield in_flight
    watchers = GaugeMetricFamily("aggregator_watchers", "Watchers of workflows open now.")
    watchers.add_metric([], counts.watchers)
    yield watchers
    watched = GaugeMetricFamily(
        "aggregator_watched_workflows", "Workflows being watched now, one poller each."
    )
    watched.add_metric([], counts.watched)
    yield watched
    alone = GaugeMetricFamily(
        "aggregator_shared_store_unavailable",
        "Processes whose shared parts store is unavailable now, each keeping its own parts.",
    )
    alone.add_metric([], counts.alone)
    yield alone
    for name, (help_text, _) in _PARTICIPANT_COUNTERS.items():
        yield _table(
            CounterMetricFamily,
            f"aggregator_participant_{name}",
            help_text,
            ["participant"],
            {(p,): value for (counter, p), value in counts.participants.items() if counter == name},
        )
    yield _table(
        CounterMetricFamily,
        "aggregator_participant_parts",
        "Parts in answers, by outcome.",
        ["participant", "outcome"],
        counts.parts,
    )
    yield _table(
        GaugeMetricFamily,
        "aggregator_participant_circuit_state",
        "Workers whose circuit breaker for the participant is in this state (1 per worker).",
        ["participant", "state"],
        counts.circuits,
    )
    yield _table(
        CounterMetricFamily,
        "aggregator_anomalies",
        "Anomalies in answers made afresh (not in answers served again), by code and"
        " whether confirmed.",
        ["code", "confirmed"],
        counts.anomalies,
    )
    yield _table(
        CounterMetricFamily,
        "aggregator_anomalies_withdrawn",
        "Anomalies that disappeared once a participant was asked again.",
        ["code"],
        counts.withdrawn,
    )


class _Service(Collector):
    """The service's counts: this process's, or every worker's (``service``); and,
    with one process only, prometheus-client's ``process_*`` and ``python_gc_*``
    (per process, they would go up and down with the worker a scrape reaches)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._per_process = (
            ProcessCollector(registry=None),
            GCCollector(registry=CollectorRegistry()),  # a registry of its own, read here
        )

    def collect(self) -> Iterator[Metric]:
        service = self._metrics.service
        if service is not None:
            yield from families(service())
            return
        yield from families(self._metrics.counts())
        for collector in self._per_process:
            yield from collector.collect()


class GatewayMetrics:
    """One registry per gateway, so several gateways in a process never collide.

    ``service``, when set (``_workers.Exchange.service``), gives the counts of every
    worker serving the port; by default the process's own are the service's.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests: dict[tuple[str, str, int], list[int]] = {}
        self._latency: dict[Labels, list[float]] = {}
        self._calls: dict[Labels, list[float]] = {}
        self._aggregator: StatusAggregator | None = None
        self._in_flight: Callable[[], float] = lambda: 0
        self.service: Callable[[], Counts] | None = None
        self.registry.register(_Service(self))
        PlatformCollector(registry=self.registry)  # python_info
        build = GaugeMetricFamily(
            "aggregator_build_info", "The running version; always 1.", labels=["version"]
        )
        build.add_metric([__version__], 1)
        self.registry.register(_Fixed([build]))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        count = self._requests.get((route, method, status))
        if count is None:
            count = self._requests[(route, method, status)] = [0]
        count[0] += 1
        _observe(self._latency, (route,), seconds)

    def fetched(self, participant: str, part: Part, seconds: float) -> None:
        _observe(self._calls, (participant, part.outcome), seconds)  # a str: no .value

    def count_in_flight(self, read: Callable[[], float]) -> None:
        self._in_flight = read

    def watch(self, aggregator: StatusAggregator) -> None:
        self._aggregator = aggregator

    def counts(self) -> Counts:
        """This process's counts now."""
        counts = Counts(
            requests={(r, m, str(s)): value[0] for (r, m, s), value in self._requests.items()},
            latency={key: list(value) for key, value in self._latency.items()},
            calls={key: list(value) for key, value in self._calls.items()},
            in_flight=int(self._in_flight()),
        )
        aggregator = self._aggregator
        if aggregator is not None:
            counts.watchers = aggregator.watches.watchers
            counts.watched = aggregator.watches.workflows
            shared = aggregator.shared
            counts.alone = int(shared is not None and shared.problem is not None)
            for participant, stats in aggregator.stats().items():
                for name, (_, attribute) in _PARTICIPANT_COUNTERS.items():
                    counts.participants[(name, participant)] = getattr(stats, attribute)
                for outcome, value in stats.outcomes.items():
                    counts.parts[(participant, str(outcome))] = value
            for (code, confirmed), value in aggregator.anomalies.raised_by.items():
                counts.anomalies[(code, str(confirmed).lower())] = value
            for code, value in aggregator.anomalies.withdrawn_by.items():
                counts.withdrawn[(code,)] = value
            for participant, current in aggregator.breaker_states().items():
                for state in BreakerState:
                    counts.circuits[(participant, state.value)] = int(state is current)
        return counts

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Fixed(Collector):
    def __init__(self, fixed: list[Metric]) -> None:
        self._fixed = fixed

    def collect(self) -> Iterator[Metric]:
        yield from self._fixed
