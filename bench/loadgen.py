"""Request-rate load: wrk for GETs, hload (bench/hload.c) for HEADs.

wrk 4.1 cannot load HEAD requests: its response parser waits for the body a HEAD response
announces in Content-Length but never sends (wg/wrk#198), so every connection stalls. hload is
a closed-loop generator of the same shape (threads, keep-alive connections, one request in
flight each, fixed duration, every latency kept) that handles HEAD; on GET it measures within
a few percent of wrk (the harness can show both side by side with ``--calibrate``).

Both run unpinned by default, on the same cores as the servers: the machine has two and the
generator needs one of them at high rates. ``cpu`` pins the generator with ``taskset``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "build_hload", "run_hload", "run_wrk"]

HLOAD_SOURCE = Path(__file__).with_name("hload.c")

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class LoadResult:
    requests: int
    requests_per_s: float
    p99_ms: float
    bad: int  # non-2xx/3xx answers plus socket errors
    tool: str


class LoadError(RuntimeError):
    pass


def _pinned(command: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *command] if cpu else command


def _lua(path: Path, method: str, headers: dict[str, str]) -> Path:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    url: str,
    *,
    workdir: Path,
    headers: dict[str, str],
    connections: int,
    threads: int,
    seconds: int,
    cpu: str | None = None,
    timeout_s: int = 30,
) -> LoadResult:
    """GET ``url`` with wrk; requests/s and p99 from wrk's latency distribution."""
    script = _lua(workdir / "get.lua", "GET", headers)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        _pinned(command, cpu), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise LoadError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> LoadResult:
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if rate is None or p99 is None or total is None:
        raise LoadError(f"cannot read wrk's output:\n{output}")
    bad = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        bad += int(non2xx.group(1))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        bad += sum(int(value) for value in errors.groups())
    return LoadResult(
        requests=int(total.group(1)),
        requests_per_s=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        bad=bad,
        tool="wrk",
    )


def build_hload(workdir: Path) -> Path:
    """Compile hload.c into ``workdir``; LoadError when no C compiler is installed."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LoadError("no C compiler (cc) to build bench/hload.c: apt-get install gcc")
    binary = workdir / "hload"
    subprocess.run(
        [compiler, "-O2", "-pthread", "-o", str(binary), str(HLOAD_SOURCE)],
        check=True,
        capture_output=True,
    )
    return binary


def run_hload(
    binary: Path,
    url: str,
    *,
    method: str,
    headers: dict[str, str],
    connections: int,
    threads: int,
    seconds: int,
    cpu: str | None = None,
) -> LoadResult:
    command = [str(binary), f"-c{connections}", f"-t{threads}", f"-d{seconds}", "-m", method]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    done = subprocess.run(
        _pinned(command, cpu), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise LoadError(f"hload failed ({done.returncode}): {done.stderr[-500:]}")
    result = json.loads(done.stdout)
    return LoadResult(
        requests=int(result["requests"]),
        requests_per_s=float(result["rps"]),
        p99_ms=float(result["p99_ms"]),
        bad=int(result["non2xx"]) + int(result["errors"]),
        tool="hload",
    )
