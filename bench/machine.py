"""A description of the machine and the software a run measured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

__all__ = ["describe"]


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not installed"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "?"


def _sha_ni() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return "yes" if " sha_ni" in cpuinfo.read() else "no"
    except OSError:
        return "?"


def _virtualisation() -> str:
    """Whether this is a VM, and whether freed memory goes back to the host: then memory the
    kernel hands out again is faulted in from the host, which makes allocation-heavy work
    (page cache for new files, fresh buffers) slower and noisier."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            guest = " hypervisor" in cpuinfo.read()
    except OSError:
        guest = False
    if not guest:
        return "none detected"
    reporting = "/sys/module/page_reporting/parameters/reported_kib"
    balloon = "/sys/bus/virtio/drivers/virtio_balloon"
    text = "virtual machine"
    if os.path.exists(reporting):
        with open(reporting) as reported:
            kib = int(reported.read().strip() or 0)
        text += f", free page reporting on ({kib / (1 << 20):.0f} GiB handed back to the host)"
    elif os.path.isdir(balloon) and any(name.startswith("virtio") for name in os.listdir(balloon)):
        text += ", virtio balloon"
    return text


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _http_server() -> str:
    from wharf.config.model import HTTPConfig

    # The benchmark's wharf runs on its defaults unless the environment overrides them.
    chosen = os.environ.get("REGISTRY_HTTP_SERVER", HTTPConfig().server)
    libraries = ("uvicorn", "httptools", "uvloop") if chosen == "uvicorn" else ("granian", "uvloop")
    return f"{chosen} ({', '.join(f'{name} {_version(name)}' for name in libraries)})"


def describe() -> list[tuple[str, str]]:
    load = os.getloadavg()
    return [
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores (nproc), SHA-NI: {_sha_ni()}"),
        ("Memory", _memory()),
        ("Virtualisation", _virtualisation()),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("OS", platform.freedesktop_os_release().get("PRETTY_NAME", "?")),
        ("Python", sys.version.split()[0]),
        ("wharf", _version("wharf")),
        ("wharf's HTTP server", _http_server()),
        ("docker-registry", _first_line(["docker-registry", "--version"])),
        ("wrk", _first_line(["wrk", "--version"])),
        ("skopeo", _first_line(["skopeo", "--version"])),
        ("Load average at start", " ".join(f"{value:.2f}" for value in load)),
    ]
