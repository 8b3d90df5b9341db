"""Prometheus metrics: the gateway's requests and each participant's calls."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aggregator._aggregator import StatusAggregator
from aggregator._breaker import BreakerState
from aggregator._part import Part

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _AggregatorCollector(Collector):
    """Reads the aggregator's own counters at scrape time: nothing on the hot path."""

    def __init__(self, aggregator: StatusAggregator) -> None:
        self._aggregator = aggregator

    def collect(self) -> Iterator[Metric]:
        stats = self._aggregator.stats()
        counters = {
            "cache_hits": ("Parts served from the fresh cache.", "cache_hits"),
            "cache_misses": ("Upstream calls started (cache misses).", "fetches"),
            "coalesced_waits": ("Callers that joined a call already in flight.", "coalesced"),
            "stale_served": ("Parts served stale because a live fetch failed.", "stale_served"),
            "retries": ("Retries after connection errors.", "retries"),
        }
        for name, (help_text, attribute) in counters.items():
            family = CounterMetricFamily(
                f"aggregator_participant_{name}", help_text, labels=["participant"]
            )
            for participant, counts in stats.items():
                family.add_metric([participant], getattr(counts, attribute))
            yield family
        parts = CounterMetricFamily(
            "aggregator_participant_parts",
            "Parts in answers, by outcome.",
            labels=["participant", "outcome"],
        )
        for participant, counts in stats.items():
            for outcome, count in sorted(counts.outcomes.items()):
                parts.add_metric([participant, str(outcome)], count)
        yield parts
        circuit = GaugeMetricFamily(
            "aggregator_participant_circuit_state",
            "1 for the circuit breaker's current state.",
            labels=["participant", "state"],
        )
        for participant, current in self._aggregator.breaker_states().items():
            for state in BreakerState:
                circuit.add_metric([participant, state.value], 1.0 if state is current else 0.0)
        yield circuit


class _Latencies:
    """A histogram by label values, counted without locks (see ``_RequestCounts``)."""

    __slots__ = ("_counts", "_help", "_labels", "_name")

    def __init__(self, name: str, help_text: str, labels: list[str]) -> None:
        self._name = name
        self._help = help_text
        self._labels = labels
        self._counts: dict[tuple[str, ...], list[float]] = {}  # buckets..., +Inf, sum

    def observe(self, values: tuple[str, ...], seconds: float) -> None:
        counts = self._counts.get(values)
        if counts is None:
            counts = self._counts[values] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        counts[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self._name, self._help, labels=self._labels)
        bounds = [*(str(b) for b in _LATENCY_BUCKETS), "+Inf"]
        for values, counts in sorted(self._counts.items()):
            cumulative = list(accumulate(counts[:-1]))
            family.add_metric(list(values), list(zip(bounds, cumulative, strict=True)), counts[-1])
        return family


class _RequestCounts(Collector):
    """Requests answered, their latency and each upstream call's, counted on the
    hot path without locks.

    prometheus-client's Counter and Histogram take a lock on every increment,
    which a single-threaded event loop does not need and which costs about a
    microsecond each; here an observation is a few list increments, and the
    families are built when scraped.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], list[int]] = {}
        self._latency = _Latencies(
            "aggregator_http_request_duration_seconds", "Time to answer an HTTP request.", ["route"]
        )
        self.calls = _Latencies(
            "aggregator_participant_call_duration_seconds",
            "Upstream calls to participants, by outcome.",
            ["participant", "outcome"],
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        count = self._counts.get((route, method, status))
        if count is None:
            count = self._counts[(route, method, status)] = [0]
        count[0] += 1
        self._latency.observe((route,), seconds)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "aggregator_http_requests",
            "HTTP requests answered.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted(self._counts.items()):
            requests.add_metric([route, method, str(status)], count[0])
        yield requests
        yield self._latency.family()
        yield self.calls.family()


class GatewayMetrics:
    """One registry per gateway, so several gateways in a process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = _RequestCounts()
        self.registry.register(self._requests)
        self.observe_request = self._requests.observe
        self.in_flight = Gauge(
            "aggregator_http_requests_in_flight", "Requests being answered.", registry=self.registry
        )
        self._calls = self._requests.calls

    def count_in_flight(self, read: Callable[[], float]) -> None:
        self.in_flight.set_function(read)

    def watch(self, aggregator: StatusAggregator) -> None:
        self.registry.register(_AggregatorCollector(aggregator))

    def fetched(self, participant: str, part: Part, seconds: float) -> None:
        self._calls.observe((participant, part.outcome), seconds)  # a str: no .value

    def render(self) -> bytes:
        return generate_latest(self.registry)
