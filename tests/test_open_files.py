"""The open-files limit: raised at start for the server and its workers, and the connection cap
that keeps a flood of idle connections from exhausting it."""

from __future__ import annotations

import contextlib
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import WharfServer, wait_for_http
from wharf.open_files import (
    MAX_CONNECTIONS_CEILING,
    OpenFiles,
    default_max_connections,
    fits,
)

SOFT, HARD = resource.getrlimit(resource.RLIMIT_NOFILE)


def test_the_derived_cap_leaves_each_connection_a_file() -> None:
    assert default_max_connections(1024) == 480
    assert fits(480, 1024)
    assert not fits(481, 1024)
    assert default_max_connections(1_048_576) == MAX_CONNECTIONS_CEILING
    assert default_max_connections(resource.RLIM_INFINITY) == MAX_CONNECTIONS_CEILING
    assert fits(100_000, resource.RLIM_INFINITY)
    assert default_max_connections(20) == 1


def test_the_limit_as_logged() -> None:
    assert str(OpenFiles(limit=4096, hard=4096, was=1024)) == "4096 (raised from 1024)"
    assert str(OpenFiles(limit=1024, hard=1024, was=1024)) == "1024 (the hard limit)"
    unlimited = OpenFiles(limit=1024, hard=resource.RLIM_INFINITY, was=1024, error="no")
    assert str(unlimited) == "1024 (hard limit unlimited)"


@pytest.mark.skipif(HARD < 2048, reason="needs a hard limit of open files above 1024")
def test_raise_limit_raises_the_soft_limit_to_the_hard_limit() -> None:
    code = "from wharf.open_files import raise_limit; print(raise_limit())"
    result = subprocess.run(
        ["prlimit", f"--nofile=1024:{HARD}", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"{HARD} (raised from 1024)"


# --- real servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def serving_with_open_files(server: WharfServer, soft: int, hard: int) -> Iterator[WharfServer]:
    """``server`` started with that RLIMIT_NOFILE, as a service manager would start it."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    command = [sys.executable, "-m", "wharf", "serve", str(server.config_path)]
    with server.log_path.open("ab") as log:
        server.process = subprocess.Popen(
            ["prlimit", f"--nofile={soft}:{hard}", *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server.env,
            start_new_session=True,
        )
    try:
        wait_for_http(server.url + "/v2/", process=server.process)
        yield server
    finally:
        server.cleanup()


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-files limit for {pid}")


@pytest.mark.server
@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc/<pid>/limits")
@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_the_server_and_its_workers_raise_their_soft_limit(server: str) -> None:
    hard = min(HARD, 4096)
    if hard <= 1024:
        pytest.skip("needs a hard limit of open files above 1024")
    config = {"log": {"level": "info"}, "http": {"server": server}}
    with serving_with_open_files(WharfServer(config=config, workers=2), 1024, hard) as running:
        assert running.process is not None
        deadline = time.monotonic() + 10
        while len(workers := _descendants(running.process.pid)) < 2:  # one may still start
            assert time.monotonic() < deadline, f"fewer than 2 workers: {workers}"
            time.sleep(0.1)
        for pid in [running.process.pid, *workers]:
            assert _open_files_limit(pid) == (hard, hard)
        assert f"open files: {hard} (raised from 1024)" in running.log()


FLOOD = 3000  # connections, against a server allowed 1024 open files


@pytest.fixture
def sockets_for_a_flood() -> Iterator[None]:
    """This process's own limit raised for the flood's sockets and its clients'."""
    needed = FLOOD + 500
    if needed > HARD:
        pytest.skip(f"needs a hard limit of open files of {needed} at least")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(SOFT, needed), HARD))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.usefixtures("sockets_for_a_flood")
def test_a_flood_of_idle_connections_does_not_keep_clients_out() -> None:
    """More idle and half-sent connections than the server may open files for: every new
    client is still answered at once."""
    # Timeouts longer than the test: only the connection cap keeps the server answering.
    config = {"log": {"level": "info"}, "http": {"server": "uvicorn", "headertimeout": "60s"}}
    server = WharfServer(storage={"inmemory": {}}, config=config)
    held: list[socket.socket] = []
    with serving_with_open_files(server, 1024, 1024) as running:
        address, _, port = running.host.rpartition(":")

        def answered_at_once() -> None:
            began = time.monotonic()
            response = httpx.get(running.url + "/v2/", timeout=5)
            assert response.status_code == 200
            assert time.monotonic() - began < 2

        try:
            for wave in range(6):
                for index in range(FLOOD // 6):
                    connection = socket.create_connection((address, int(port)), timeout=10)
                    held.append(connection)
                    if index % 3 == 1:
                        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: regis")
                    elif index % 3 == 2 and wave % 2:  # idle after an answer (left unread)
                        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
                answered_at_once()
            for _ in range(10):  # and while the flood stays
                answered_at_once()
                time.sleep(0.2)
        finally:
            for connection in held:
                connection.close()
        answered_at_once()
        log = running.log()
    assert "open files: 1024 (the hard limit); at most 480 connections per worker" in log
    assert "closing the longest idle ones" in log
    assert "Too many open files" not in log
