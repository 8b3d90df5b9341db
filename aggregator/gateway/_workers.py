"""Workers serving one port (``serve --workers N``, gunicorn) share their metrics.

Each worker writes its counts to a file of its own in a shared directory, once a
second and when it stops; the worker a scrape reaches adds the others' latest
counts to its own, so ``/metrics`` describes the service, not one process. A
worker that has exited still counts for its counters (they must never go down),
not for its gauges. The directory is ``$PROMETHEUS_MULTIPROC_DIR``, the variable
prometheus-client's own multi-process mode reads (our files do not clash with its
``*.db`` files); ``serve --workers N`` makes one for its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

from ._metrics import Counts, GatewayMetrics

DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "status-aggregator-"
EVERY = 1.0  # seconds between a worker's writes: how old another worker's counts may be


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class Exchange:
    """One worker's side of the shared directory.

    Example::

        exchange = Exchange(Path(os.environ[DIRECTORY_ENV]), metrics)
        metrics.others = exchange.others
        task = asyncio.create_task(exchange.run())
    """

    def __init__(self, directory: Path, metrics: GatewayMetrics, *, pid: int | None = None) -> None:
        self._directory = directory
        self._metrics = metrics
        self._pid = os.getpid() if pid is None else pid
        self._path = directory / f"{PREFIX}{self._pid}.json"

    def write(self) -> None:
        """This worker's counts now, replacing its file at once (never half written)."""
        staging = self._path.with_suffix(".tmp")
        staging.write_text(json.dumps(self._metrics.counts().to_json()))
        os.replace(staging, self._path)

    def others(self) -> list[Counts]:
        """The other workers' latest counts; an unreadable file is skipped."""
        found = []
        for path in self._directory.glob(f"{PREFIX}*.json"):
            number = path.stem.removeprefix(PREFIX)
            if not number.isdigit() or int(number) == self._pid:
                continue
            pid = int(number)
            try:
                counts = Counts.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found.append(counts if _alive(pid) else counts.without_gauges())
        return found

    async def run(self) -> None:
        """Write every ``EVERY`` seconds until cancelled, then once more."""
        try:
            while True:
                self.write()
                await asyncio.sleep(EVERY)
        finally:
            with contextlib.suppress(OSError):
                self.write()
