"""The ``process_*`` metrics of the Prometheus client libraries, read from ``/proc``.

Every worker reports its own at each snapshot, and the debug listener its own and the
launcher's; the exposition adds them up into the instance's: CPU seconds of every process
that ran (an exited worker's included, so the counter never goes back), the memory and open
files of the living ones, the earliest start time and the lowest open-files limit. Where
``/proc`` is missing (not Linux) there are none.
"""

from __future__ import annotations

import os

from wharf.observability.metrics import Sample

__all__ = ["FAMILIES", "process_samples"]

#: name -> (kind, help) as in the Prometheus client libraries.
FAMILIES = {
    "process_cpu_seconds_total": ("counter", "Total user and system CPU time spent in seconds."),
    "process_resident_memory_bytes": ("gauge", "Resident memory size in bytes."),
    "process_virtual_memory_bytes": ("gauge", "Virtual memory size in bytes."),
    "process_open_fds": ("gauge", "Number of open file descriptors."),
    "process_max_fds": ("gauge", "Maximum number of open file descriptors."),
    "process_start_time_seconds": (
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    ),
}

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
_boot_time: float | None = None


def _boot() -> float:
    global _boot_time
    if _boot_time is None:
        with open("/proc/stat", "rb") as stream:
            for line in stream:
                if line.startswith(b"btime "):
                    _boot_time = float(line.split()[1])
                    break
            else:
                raise OSError("no btime in /proc/stat")
    return _boot_time


def _max_fds(pid: int | str) -> float:
    with open(f"/proc/{pid}/limits", "rb") as stream:
        for line in stream:
            if line.startswith(b"Max open files"):
                soft = line.split()[3]
                return float("inf") if soft == b"unlimited" else float(soft)
    raise OSError("no open-files limit")


def process_samples(pid: int | str = "self") -> list[Sample]:
    """The six samples of process ``pid`` (this one by default); none when it cannot be read
    (gone, not ours, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            stat = stream.read()
        # The command name (in parentheses) may hold spaces: count fields after it.
        fields = stat[stat.rindex(b")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        started = int(fields[19])
        virtual, resident = int(fields[20]), int(fields[21])
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        max_fds = _max_fds(pid)
        boot = _boot()
    except (OSError, ValueError, IndexError):
        return []
    return [
        ("process_cpu_seconds_total", {}, (utime + stime) / _TICKS),
        ("process_resident_memory_bytes", {}, float(resident * _PAGE)),
        ("process_virtual_memory_bytes", {}, float(virtual)),
        ("process_open_fds", {}, float(open_fds)),
        ("process_max_fds", {}, max_fds),
        ("process_start_time_seconds", {}, boot + started / _TICKS),
    ]
