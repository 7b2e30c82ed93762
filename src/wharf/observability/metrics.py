"""Metrics of one worker process: plain counters in memory, written to a file now and then.

Recording is on the request path, so it is a dictionary lookup and a few additions on lists
(about a microsecond; no locks, no labels objects, nothing shared between processes). Every
``interval`` seconds, and when the worker stops, :func:`flush_loop` writes a snapshot of the
process's metrics as JSON to ``<WHARF_METRICS_DIR>/<pid>.json`` (written aside and renamed, so
a reader never sees half a file); the debug listener adds the snapshots of all workers up when
it is scraped (see ``exposition``). A scrape is therefore up to ``interval`` old, which is far
below any Prometheus scrape interval.

Values that already exist elsewhere (cache hit counters, queue lengths) are not copied on every
change: collectors registered with :meth:`WorkerMetrics.collect` read them at snapshot time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "BUCKETS",
    "Sample",
    "WorkerMetrics",
    "flush_loop",
    "write_snapshot",
]

log = logging.getLogger("wharf.metrics")


#: Upper bounds (seconds) of the latency histograms. Manifest GETs take well under a
#: millisecond, blob transfers minutes: both ends need buckets.
BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_FIRST_BUCKET = 4  # request entries: count, seconds, bytes in, bytes out, buckets...

#: name, labels, value
Sample = tuple[str, dict[str, str], float]


class WorkerMetrics:
    """This process's metrics. ``in_flight`` and ``uploads_in_progress`` are plain gauges."""

    def __init__(self) -> None:
        #: (route, method, status) -> [count, seconds, bytes in, bytes out, *buckets, +Inf]
        self.requests: dict[tuple[str, str, int], list[float]] = {}
        #: (driver, operation) -> [count, seconds, errors, *buckets, +Inf]
        self.storage: dict[tuple[str, str], list[float]] = {}
        #: (name, sorted label pairs) -> value; for rare events (notifications, Redis)
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.in_flight = 0
        self.uploads_in_progress = 0
        self._collectors: list[Callable[[], Iterable[Sample]]] = []

    # -- recording (hot path) ------------------------------------------------------------------

    def request(
        self,
        route: str,
        method: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        key = (route, method, status)
        entry = self.requests.get(key)
        if entry is None:
            entry = self.requests[key] = [0.0] * (_FIRST_BUCKET + len(BUCKETS) + 1)
        entry[0] += 1
        entry[1] += seconds
        entry[2] += bytes_in
        entry[3] += bytes_out
        entry[_FIRST_BUCKET + bisect_left(BUCKETS, seconds)] += 1

    def storage_call(self, driver: str, operation: str, seconds: float, failed: bool) -> None:
        key = (driver, operation)
        entry = self.storage.get(key)
        if entry is None:
            entry = self.storage[key] = [0.0] * (3 + len(BUCKETS) + 1)
        entry[0] += 1
        entry[1] += seconds
        if failed:
            entry[2] += 1
        entry[3 + bisect_left(BUCKETS, seconds)] += 1

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0.0) + value

    def collect(self, collector: Callable[[], Iterable[Sample]]) -> None:
        """Call ``collector`` at each snapshot for samples kept elsewhere (counters are summed
        over workers, gauges too; both are named by ``exposition.FAMILIES``)."""
        self._collectors.append(collector)

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        samples: list[Sample] = [
            (name, dict(labels), value) for (name, labels), value in self.counters.items()
        ]
        samples.append(("wharf_http_requests_in_flight", {}, float(self.in_flight)))
        samples.append(("wharf_uploads_in_progress", {}, float(self.uploads_in_progress)))
        for collector in self._collectors:
            try:
                samples.extend(collector())
            except Exception:  # a broken collector must not stop the others
                log.exception("metrics collector failed")
        histograms: list[dict[str, Any]] = []
        for (route, method, status), entry in self.requests.items():
            labels = {"route": route, "method": method, "status": str(status)}
            histograms.append(
                {
                    "name": "wharf_http_request_duration_seconds",
                    "labels": labels,
                    "count": entry[0],
                    "sum": entry[1],
                    "buckets": entry[_FIRST_BUCKET:],
                }
            )
            samples.append(("wharf_http_request_bytes_total", labels, entry[2]))
            samples.append(("wharf_http_response_bytes_total", labels, entry[3]))
        for (driver, operation), entry in self.storage.items():
            labels = {"driver": driver, "operation": operation}
            histograms.append(
                {
                    "name": "wharf_storage_operation_duration_seconds",
                    "labels": labels,
                    "count": entry[0],
                    "sum": entry[1],
                    "buckets": entry[3:],
                }
            )
            samples.append(("wharf_storage_operation_errors_total", labels, entry[2]))
        return {
            "pid": os.getpid(),
            "samples": [[name, labels, value] for name, labels, value in samples],
            "histograms": histograms,
        }


def write_snapshot(metrics: WorkerMetrics, directory: str) -> None:
    data = json.dumps(metrics.snapshot(), separators=(",", ":")).encode()
    path = os.path.join(directory, f"{os.getpid()}.json")
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


async def flush_loop(metrics: WorkerMetrics, directory: str, interval: float = 1.0) -> None:
    """Write snapshots until cancelled, then one last one."""
    try:
        while True:
            try:
                write_snapshot(metrics, directory)
            except OSError as error:  # the directory went away: the server is stopping
                log.debug("cannot write metrics: %s", error)
            await asyncio.sleep(interval)
    finally:
        with contextlib.suppress(OSError):
            write_snapshot(metrics, directory)
