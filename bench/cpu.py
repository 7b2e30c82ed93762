"""How much CPU other processes took while a sample ran: the noise behind that sample.

Busy time of the whole machine (/proc/stat) minus the CPU time of the benchmark's own
processes: the registry's serving processes and this process with its waited-for children
(load generators, skopeo). Reported in cores, averaged over the sample.
"""

from __future__ import annotations

import os
import time

__all__ = ["CpuMeter", "ServerCpu"]

_TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / _TICKS


def _process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class CpuMeter:
    """``with CpuMeter(pids) as meter: ...`` then ``meter.foreign_cores``."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.foreign_cores = 0.0

    def _ours(self) -> float:
        return _own_cpu() + sum(_process_cpu(pid) for pid in self.pids)

    def __enter__(self) -> CpuMeter:
        self._started = time.monotonic()
        self._busy = _machine_busy()
        self._ours_at_start = self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self._started
        busy = _machine_busy() - self._busy
        ours = self._ours() - self._ours_at_start
        self.foreign_cores = max(0.0, busy - ours) / elapsed if elapsed > 0 else 0.0


class ServerCpu:
    """CPU seconds (user + system) the given processes use inside the ``with`` block."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.seconds = 0.0

    def _total(self) -> float:
        return sum(_process_cpu(pid) for pid in self.pids)

    def __enter__(self) -> ServerCpu:
        self._start = self._total()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._total() - self._start
