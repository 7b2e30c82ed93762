"""Worker metrics, their snapshots, and the sum over workers in Prometheus's text format."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from pathlib import Path

from wharf.observability.exposition import FAMILIES, merge, read_snapshots, render
from wharf.observability.metrics import BUCKETS, WorkerMetrics, flush_loop, write_snapshot

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, checking the comment lines on the way."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            assert line.split()[2] in FAMILIES
            continue
        match = _SAMPLE.match(line)
        assert match, line
        values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def test_a_request_lands_in_its_bucket() -> None:
    metrics = WorkerMetrics()
    metrics.request("manifest", "GET", 200, 0.0004, 0, 500)
    metrics.request("manifest", "GET", 200, 0.003, 0, 500)
    metrics.request("manifest", "GET", 200, 120.0, 0, 500)
    entry = metrics.requests[("manifest", "GET", 200)]
    assert entry[:4] == [3, 120.0034, 0, 1500]
    buckets = entry[4:]
    assert len(buckets) == len(BUCKETS) + 1
    assert buckets[0] == 1  # <= 0.5 ms
    assert buckets[BUCKETS.index(0.005)] == 1
    assert buckets[-1] == 1  # +Inf


def test_workers_add_up_and_dead_workers_keep_counters_not_gauges() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.request("blob", "GET", 200, 0.01, 0, 1000)
    second.request("blob", "GET", 200, 0.02, 0, 3000)
    first.in_flight = 2
    second.in_flight = 5
    a, b = first.snapshot(), second.snapshot()
    a["pid"], b["pid"] = 1, 2
    text = render(merge([a, b], alive=lambda pid: pid == 1))
    values = parse(text)
    labels = '{method="GET",route="blob",status="200"}'
    assert values[f"wharf_http_requests_total{labels}"] == 2
    assert values[f"wharf_http_response_bytes_total{labels}"] == 4000
    assert values[f"wharf_http_request_duration_seconds_count{labels}"] == 2
    assert math.isclose(values[f"wharf_http_request_duration_seconds_sum{labels}"], 0.03)
    bucket = '{method="GET",route="blob",status="200",le="0.025"}'
    assert values[f"wharf_http_request_duration_seconds_bucket{bucket}"] == 2
    bucket = '{method="GET",route="blob",status="200",le="0.01"}'
    assert values[f"wharf_http_request_duration_seconds_bucket{bucket}"] == 1
    assert values["wharf_http_requests_in_flight"] == 2  # worker 2 is gone
    assert "# TYPE wharf_http_request_duration_seconds histogram" in text


def test_collectors_and_counters_are_exported() -> None:
    metrics = WorkerMetrics()
    metrics.collect(lambda: [("wharf_cache_hits_total", {"cache": "tags"}, 7.0)])
    metrics.inc("wharf_notification_events_total", endpoint="a", result="sent")
    metrics.inc("wharf_notification_events_total", 2, endpoint="a", result="sent")
    metrics.storage_call("filesystem", "stat", 0.0001, False)
    metrics.storage_call("filesystem", "stat", 0.0001, True)
    values = parse(render(merge([metrics.snapshot()])))
    assert values['wharf_cache_hits_total{cache="tags"}'] == 7
    assert values['wharf_notification_events_total{endpoint="a",result="sent"}'] == 3
    labels = '{driver="filesystem",operation="stat"}'
    assert values[f"wharf_storage_operation_duration_seconds_count{labels}"] == 2
    assert values[f"wharf_storage_operation_errors_total{labels}"] == 1


def test_label_values_are_escaped() -> None:
    metrics = WorkerMetrics()
    metrics.inc("wharf_health_check_failures_total", check='say "hi"\\\n')
    text = render(merge([metrics.snapshot()]))
    assert 'check="say \\"hi\\"\\\\\\n"' in text


def test_snapshots_are_written_whole_and_read_back(tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    metrics.request("base", "GET", 200, 0.001, 0, 2)
    write_snapshot(metrics, str(tmp_path))
    (tmp_path / "broken.json").write_text("{")
    assert sorted(os.listdir(tmp_path)) == sorted(["broken.json", f"{os.getpid()}.json"])
    snapshots = read_snapshots(str(tmp_path))
    assert len(snapshots) == 1
    assert json.loads((tmp_path / f"{os.getpid()}.json").read_text())["pid"] == os.getpid()


async def test_the_flush_loop_writes_a_last_snapshot_when_stopped(tmp_path: Path) -> None:
    metrics = WorkerMetrics()
    task = asyncio.get_running_loop().create_task(flush_loop(metrics, str(tmp_path), 60))
    await asyncio.sleep(0.05)
    metrics.request("base", "GET", 200, 0.001, 0, 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    values = parse(render(merge(read_snapshots(str(tmp_path)))))
    assert values['wharf_http_requests_total{method="GET",route="base",status="200"}'] == 1


def test_recording_a_request_takes_about_a_microsecond() -> None:
    import timeit

    metrics = WorkerMetrics()
    per_call = (
        min(
            timeit.repeat(
                lambda: metrics.request("manifest", "GET", 200, 0.0003, 0, 500),
                number=20000,
                repeat=5,
            )
        )
        / 20000
    )
    assert per_call < 5e-6, per_call
