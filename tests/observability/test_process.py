"""The ``process_*`` metrics: read from ``/proc``, added up over an instance's processes (a
start time and a limit take the lowest), and on a real server's ``/metrics``."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from tests.observability.test_debug_listener import _debug_config, _wait_for
from tests.support.server import WharfServer, free_port
from wharf.observability.exposition import merge, render
from wharf.observability.process import FAMILIES, process_samples

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc here")


def test_this_process_is_described_plausibly() -> None:
    values = {name: value for name, _, value in process_samples()}
    assert set(values) == set(FAMILIES)
    assert 0 < values["process_cpu_seconds_total"] < time.process_time() + 1
    assert 10 * 2**20 < values["process_resident_memory_bytes"] < 4 * 2**30
    assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
    assert 3 <= values["process_open_fds"] <= values["process_max_fds"]
    now = time.time()
    assert now - 24 * 3600 < values["process_start_time_seconds"] <= now


def test_a_process_gone_has_no_samples() -> None:
    assert process_samples(2**22 + 12345) == []


def test_instance_totals_over_processes() -> None:
    def snapshot(pid: int, cpu: float, memory: float, started: float, limit: float) -> Any:
        samples = [
            ["process_cpu_seconds_total", {}, cpu],
            ["process_resident_memory_bytes", {}, memory],
            ["process_start_time_seconds", {}, started],
            ["process_max_fds", {}, limit],
        ]
        return {"pid": pid, "samples": samples, "histograms": []}

    live = {1, 2}
    merged = merge(
        [
            snapshot(1, 2.0, 100.0, 1000.0, 4096),
            snapshot(2, 3.0, 50.0, 900.0, 1024),
            snapshot(3, 4.0, 70.0, 800.0, 512),  # exited: its CPU time stays, the rest goes
        ],
        alive=lambda pid: pid in live,
    )
    text = render(merged)
    assert "process_cpu_seconds_total 9\n" in text
    assert "process_resident_memory_bytes 150\n" in text
    assert "process_start_time_seconds 900\n" in text
    assert "process_max_fds 1024\n" in text
    assert "# TYPE process_cpu_seconds_total counter" in text
    assert "# TYPE process_open_fds gauge" not in text  # no sample, no family


@pytest.mark.server
def test_metrics_describe_the_processes_of_the_instance() -> None:
    port = free_port()
    started = time.time()
    with WharfServer(workers=2, config=_debug_config(port)) as server:
        assert httpx.get(f"{server.url}/v2/").status_code == 200
        values = _wait_for(port, "process_open_fds", 1)
    # launcher, two workers and the debug listener
    assert values["process_resident_memory_bytes"] > 4 * 10 * 2**20
    assert values["process_virtual_memory_bytes"] > values["process_resident_memory_bytes"]
    assert values["process_cpu_seconds_total"] > 0
    assert started - 5 < values["process_start_time_seconds"] <= time.time()
    assert values["process_open_fds"] >= 4 * 3
    assert values["process_max_fds"] >= 1024
