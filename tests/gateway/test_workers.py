"""Workers share their metrics through files: sums, never going down, dead workers,
and files that are not ours."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from aggregator.gateway._metrics import Counts, GatewayMetrics
from aggregator.gateway._workers import GONE_AFTER, Exchange


def worker(directory: Path, pid: int, requests: int, in_flight: int = 0) -> GatewayMetrics:
    metrics = GatewayMetrics()
    for _ in range(requests):
        metrics.observe_request("/workflows/{workflow_id}/status", "GET", 200, 0.004)
    metrics.count_in_flight(lambda: in_flight)
    exchange = Exchange(directory, metrics, pid=pid)
    assert exchange.opened()
    metrics.service = exchange.service
    return metrics


def scraped(metrics: GatewayMetrics, name: str) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the scrape")


REQUESTS = 'aggregator_http_requests_total{method="GET",route="/workflows/{workflow_id}/status"'
COUNT = 'aggregator_http_request_duration_seconds_count{route="/workflows/{workflow_id}/status"}'
BUCKET = 'aggregator_http_request_duration_seconds_bucket{le="0.005",'


def test_a_scrape_reaching_either_worker_sums_both(tmp_path: Path) -> None:
    one, two = worker(tmp_path, 1, 3, in_flight=1), worker(tmp_path, 2, 2, in_flight=2)
    for metrics in (one, two):
        assert scraped(metrics, REQUESTS) == 5
        assert scraped(metrics, COUNT) == 5 and scraped(metrics, BUCKET) == 5
        assert scraped(metrics, "aggregator_http_requests_in_flight") == 3
    assert "process_cpu_seconds_total" not in one.render().decode()  # per process


def test_no_counter_goes_down_between_scrapes_of_different_workers(tmp_path: Path) -> None:
    one, two = worker(tmp_path, 1, 3), worker(tmp_path, 2, 2)
    seen = []
    for step in range(6):
        busy = (one, two)[step % 2]
        busy.observe_request("/workflows/{workflow_id}/status", "GET", 200, 0.004)
        seen.append(scraped((two, one)[step % 2], REQUESTS))  # the other one is scraped
    assert seen == sorted(seen)  # another worker's part may lag, never go back
    assert scraped(two, REQUESTS) == scraped(one, REQUESTS) == 11


def test_a_worker_gone_keeps_its_counters_not_its_gauges(tmp_path: Path) -> None:
    one = worker(tmp_path, 1, 3, in_flight=1)
    worker(tmp_path, 2, 2, in_flight=4)
    old = os.stat(tmp_path / "status-aggregator-2.json").st_mtime - GONE_AFTER - 1
    os.utime(tmp_path / "status-aggregator-2.json", (old, old))
    assert scraped(one, REQUESTS) == 5
    assert scraped(one, "aggregator_http_requests_in_flight") == 1


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"requests": [["/x", "GET", "200", "many"]]}',
        json.dumps({**Counts().to_json(), "latency": [["/x", [1, 2, 3]]]}),
        json.dumps({**Counts().to_json(), "requests": [["/x", "GET", "200", True]]}),
    ],
)
def test_a_file_of_another_version_or_origin_never_fails_a_scrape(
    tmp_path: Path, content: str
) -> None:
    one = worker(tmp_path, 1, 3)
    (tmp_path / "status-aggregator-77.json").write_text(content)
    assert scraped(one, REQUESTS) == 3


def test_a_directory_that_cannot_be_used_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = GatewayMetrics()
    exchange = Exchange(tmp_path / "missing", metrics, pid=1)
    assert not exchange.opened()
    exchange.service()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "shows this worker alone" in errors[0].getMessage()
