"""Add up the workers' metric snapshots and write them in Prometheus's text format (0.0.4).

Counters and histograms of a worker that has exited are kept (a respawned worker starts from
zero, and dropping its predecessor would make every total go backwards); its gauges are not.
A few gauges are not sums: a start time or a limit takes the lowest of the processes'.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wharf.observability import process
from wharf.observability.metrics import BUCKETS

__all__ = ["CONTENT_TYPE", "FAMILIES", "Family", "Merged", "merge", "read_snapshots", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Family:
    kind: str  # counter | gauge | histogram
    help: str
    lowest: bool = False  # the processes' lowest value instead of their sum


FAMILIES: dict[str, Family] = {
    "wharf_http_requests_total": Family(
        "counter", "HTTP requests served, by route, method and status."
    ),
    "wharf_http_request_duration_seconds": Family(
        "histogram", "Time from the request's arrival to the end of its response."
    ),
    "wharf_http_request_bytes_total": Family("counter", "Request body bytes received."),
    "wharf_http_response_bytes_total": Family("counter", "Response body bytes sent."),
    "wharf_http_requests_in_flight": Family("gauge", "HTTP requests being served."),
    "wharf_uploads_in_progress": Family(
        "gauge", "Blob upload requests receiving data (PATCH, PUT, monolithic POST)."
    ),
    "wharf_storage_operation_duration_seconds": Family(
        "histogram", "Storage driver calls, by driver and operation."
    ),
    "wharf_storage_operation_errors_total": Family(
        "counter", "Storage driver calls that failed (a missing path included)."
    ),
    "wharf_cache_hits_total": Family("counter", "Cache lookups answered from the cache."),
    "wharf_cache_misses_total": Family("counter", "Cache lookups that went to storage."),
    "wharf_notification_events_total": Family(
        "counter", "Notification events by endpoint and result (queued, sent, dropped)."
    ),
    "wharf_notification_requests_total": Family(
        "counter", "Requests to notification endpoints by status (0: no answer)."
    ),
    "wharf_notification_pending": Family("gauge", "Events waiting to be sent, by endpoint."),
    "wharf_redis_errors_total": Family(
        "counter", "Redis operations that failed, by operation (publish, barrier, subscribe)."
    ),
    "wharf_redis_barriers_total": Family(
        "counter", "Read barriers through the Redis subscription (one covers many requests)."
    ),
    "wharf_health_check_failures_total": Family("counter", "Failed health checks, by check."),
    "wharf_health_check_up": Family("gauge", "1 when a health check passes, by check."),
    "wharf_mirror_requests_total": Family(
        "counter", "Mirrored manifests and blobs asked for, by upstream, kind and result."
    ),
    "wharf_mirror_fetched_bytes_total": Family(
        "counter", "Bytes of blobs fetched from each upstream."
    ),
    "wharf_tus_uploads_total": Family(
        "counter", "tus uploads by event (created, finished, terminated, expired)."
    ),
    "wharf_tus_received_bytes_total": Family("counter", "Bytes received by tus PATCH requests."),
    "wharf_tus_finished_bytes_total": Family("counter", "Bytes of finished tus uploads."),
    "wharf_tus_checksum_mismatches_total": Family(
        "counter", "tus chunks discarded because their Upload-Checksum did not match."
    ),
    **{
        name: Family(kind, text, lowest=name in ("process_max_fds", "process_start_time_seconds"))
        for name, (kind, text) in process.FAMILIES.items()
    },
}

_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Merged:
    values: dict[_Key, float] = field(default_factory=dict)
    #: key -> [count, sum, *buckets (not cumulative), +Inf]
    histograms: dict[_Key, list[float]] = field(default_factory=dict)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_snapshots(directory: str) -> list[dict[str, Any]]:
    snapshots: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(directory, name), "rb") as stream:
                    snapshots.append(json.loads(stream.read()))
            except (OSError, ValueError):
                continue  # replaced or half gone while we read: the next scrape has it
    return snapshots


def merge(snapshots: Iterable[dict[str, Any]], alive: Callable[[int], bool] = _alive) -> Merged:
    merged = Merged()
    for snapshot in snapshots:
        live = alive(int(snapshot.get("pid", 0)))
        for name, labels, value in snapshot.get("samples", ()):
            family = FAMILIES.get(name)
            if family is None or (family.kind == "gauge" and not live):
                continue
            key = (name, tuple(sorted(labels.items())))
            before = merged.values.get(key)
            if before is None:
                merged.values[key] = float(value)
            elif family.lowest:
                merged.values[key] = min(before, float(value))
            else:
                merged.values[key] = before + float(value)
        for histogram in snapshot.get("histograms", ()):
            key = (histogram["name"], tuple(sorted(histogram["labels"].items())))
            buckets = [float(v) for v in histogram["buckets"]]
            total = merged.histograms.get(key)
            if total is None:
                merged.histograms[key] = [histogram["count"], histogram["sum"], *buckets]
            else:
                total[0] += histogram["count"]
                total[1] += histogram["sum"]
                for index, value in enumerate(buckets):
                    total[2 + index] += value
    # The request counter is the histogram's count: recorded once, exported under both names.
    for (name, labels), entry in list(merged.histograms.items()):
        if name == "wharf_http_request_duration_seconds":
            merged.values[("wharf_http_requests_total", labels)] = entry[0]
    return merged


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + text + "}" if text else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def render(merged: Merged) -> str:
    lines: list[str] = []
    for name, family in FAMILIES.items():
        if family.kind == "histogram":
            entries = sorted((k, v) for k, v in merged.histograms.items() if k[0] == name)
        else:
            entries = sorted((k, [v]) for k, v in merged.values.items() if k[0] == name)
        if not entries:
            continue
        lines.append(f"# HELP {name} {family.help}")
        lines.append(f"# TYPE {name} {family.kind}")
        for (_, labels), entry in entries:
            if family.kind != "histogram":
                lines.append(f"{name}{_labels(labels)} {_number(entry[0])}")
                continue
            cumulative = 0.0
            for bound, count in zip((*BUCKETS, math.inf), entry[2:], strict=True):
                cumulative += count
                le = (*labels, ("le", _number(bound)))
                lines.append(f"{name}_bucket{_labels(le)} {_number(cumulative)}")
            lines.append(f"{name}_sum{_labels(labels)} {_number(entry[1])}")
            lines.append(f"{name}_count{_labels(labels)} {_number(entry[0])}")
    return "\n".join(lines) + "\n"
