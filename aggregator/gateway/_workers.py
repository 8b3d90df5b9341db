"""Workers serving one port (``serve --workers N``, gunicorn) share their metrics.

Each worker writes its counts to a file of its own in a shared directory, once a
second, when it stops, and when a scrape reaches it; the worker scraped then sums
every worker's file, its own just written. A file is only ever replaced by a later
one, so no counter a scrape shows is below what an earlier scrape showed, whichever
workers they reached. A worker whose file has not been written for a few seconds
(it has exited, or stopped) still counts for its counters, not for its gauges. The
directory is ``$PROMETHEUS_MULTIPROC_DIR``, the variable prometheus-client's own
multi-process mode reads (our files do not clash with its ``*.db`` files);
``serve --workers N`` makes one for its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path

from ._metrics import Counts, GatewayMetrics

DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "status-aggregator-"
EVERY = 1.0  # seconds between a worker's writes
GONE_AFTER = 5 * EVERY  # a file older than this is a worker that no longer runs
log = logging.getLogger("aggregator.gateway")


class Exchange:
    """One worker's side of the shared directory.

    Example::

        exchange = Exchange(Path(os.environ[DIRECTORY_ENV]), metrics)
        if exchange.opened():
            metrics.service = exchange.service
        task = asyncio.create_task(exchange.run())
    """

    def __init__(self, directory: Path, metrics: GatewayMetrics, *, pid: int | None = None) -> None:
        self._directory = directory
        self._metrics = metrics
        self._path = directory / f"{PREFIX}{os.getpid() if pid is None else pid}.json"
        self._failing = False

    def opened(self) -> bool:
        """Whether this worker can share its counts (the first write); logged if not."""
        try:
            self.write()
        except OSError as exc:
            self._complain(exc)
            return False
        return True

    def write(self) -> None:
        """This worker's counts now, replacing its file at once (never half written)."""
        staging = self._path.with_suffix(".tmp")
        staging.write_text(json.dumps(self._metrics.counts().to_json()))
        os.replace(staging, self._path)

    def service(self) -> Counts:
        """Every worker's latest counts, summed; this worker's as of now."""
        try:
            self.write()
        except OSError as exc:
            self._complain(exc)
            return self._metrics.counts()  # better this worker's than none
        total = Counts()
        now = time.time()
        for path in self._directory.glob(f"{PREFIX}*.json"):
            try:
                counts = Counts.from_json(json.loads(path.read_text()))
                running = now - path.stat().st_mtime < GONE_AFTER
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                continue  # another version's, or a foreign file: never a failed scrape
            total.add(counts if running else counts.without_gauges())
        return total

    async def run(self) -> None:
        """Write every ``EVERY`` seconds until cancelled, then once more."""
        try:
            while True:
                try:
                    self.write()
                except OSError as exc:
                    self._complain(exc)
                await asyncio.sleep(EVERY)
        finally:
            with contextlib.suppress(OSError):
                self.write()

    def _complain(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            log.error(
                "cannot share metrics through %s (%s): /metrics shows this worker alone",
                self._directory,
                exc.strerror or exc,
            )
