"""Resident memory of a server's processes, sampled from /proc while a load runs."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

__all__ = ["RssPeaks", "RssSampler", "children", "command_line", "rss_bytes"]


def command_line(pid: int) -> bytes:
    """The process's arguments, NUL-separated; empty once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (wharf's workers are children of its main process)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def rss_bytes(pid: int) -> int | None:
    """VmRSS of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class RssPeaks:
    """Peaks over one sampling window: per process, and of the sum over the workers."""

    per_process: dict[int, int] = field(default_factory=dict)
    sum_of_workers: int = 0
    baseline_per_process: dict[int, int] = field(default_factory=dict)

    @property
    def max_per_worker(self) -> int:
        return max(self.per_process.values(), default=0)


class RssSampler:
    """Samples the RSS of ``pids`` every ``interval`` seconds in a thread, until stopped."""

    def __init__(self, pids: list[int], interval: float = 0.01) -> None:
        self.pids = pids
        self.interval = interval
        self.peaks = RssPeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        for pid in self.pids:
            rss = rss_bytes(pid)
            if rss is None:
                continue
            total += rss
            if rss > self.peaks.per_process.get(pid, 0):
                self.peaks.per_process[pid] = rss
        self.peaks.sum_of_workers = max(self.peaks.sum_of_workers, total)

    def __enter__(self) -> RssSampler:
        for pid in self.pids:
            self.peaks.baseline_per_process[pid] = rss_bytes(pid) or 0
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
