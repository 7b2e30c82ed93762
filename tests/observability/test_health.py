"""Health checks (storage, file, http, tcp), their thresholds, and /debug/health's answer."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import free_port
from wharf.config import Config
from wharf.config.operations import (
    FileCheckConfig,
    HealthConfig,
    HTTPCheckConfig,
    StorageCheckConfig,
    TCPCheckConfig,
)
from wharf.observability.debug_server import DebugServer
from wharf.observability.health import Check, HealthChecks, build_checks
from wharf.storage.driver.base import DriverError, FileInfo
from wharf.storage.driver.inmemory import InMemoryDriver

SECOND = timedelta(seconds=1)


@pytest.fixture
def head_server() -> Iterator[tuple[str, list[int]]]:
    """An HTTP server answering HEAD with the statuses in the returned list (then 200)."""
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ping", statuses
    finally:
        server.shutdown()
        server.server_close()


def _checks(health: HealthConfig, driver: Any = None) -> HealthChecks:
    return HealthChecks(build_checks(Config(health=health), driver))


async def _run_all(checks: HealthChecks) -> dict[str, str]:
    for check in checks.checks:
        await checks.run_once(check)
    return checks.failing()


async def test_a_file_that_exists_fails(tmp_path: Path) -> None:
    marker = tmp_path / "out-of-rotation"
    checks = _checks(
        HealthConfig(StorageCheckConfig(enabled=False), (FileCheckConfig(str(marker)),))
    )
    assert await _run_all(checks) == {}
    marker.touch()
    assert await _run_all(checks) == {str(marker): "file exists"}


async def test_tcp(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    open_addr = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    closed_addr = f"127.0.0.1:{free_port()}"
    health = HealthConfig(
        StorageCheckConfig(enabled=False),
        tcp=(TCPCheckConfig(open_addr, SECOND), TCPCheckConfig(closed_addr, SECOND)),
    )
    failing = await _run_all(_checks(health))
    server.close()
    await server.wait_closed()
    assert list(failing) == [closed_addr]
    assert failing[closed_addr].startswith(f"connection to {closed_addr} failed")


async def test_http_status_and_threshold(head_server: tuple[str, list[int]]) -> None:
    uri, statuses = head_server
    health = HealthConfig(
        StorageCheckConfig(enabled=False),
        http=(HTTPCheckConfig(uri, status_code=204, timeout=SECOND, threshold=2),),
    )
    checks = _checks(health)
    statuses.extend([204, 500, 503, 204])
    assert await _run_all(checks) == {}  # 204
    assert await _run_all(checks) == {}  # 500: one failure, threshold 2
    assert await _run_all(checks) == {uri: "downstream service returned unexpected status: 503"}
    assert await _run_all(checks) == {}  # one success clears it


async def test_storage_check() -> None:
    healthy = _checks(HealthConfig(), InMemoryDriver())  # no root yet: still an answer
    assert await _run_all(healthy) == {}

    class Broken(InMemoryDriver):
        async def stat(self, path: str) -> FileInfo:
            raise DriverError("disk on fire")

    broken = _checks(HealthConfig(StorageCheckConfig(threshold=1)), Broken())
    assert await _run_all(broken) == {"storagedriver_filesystem": "disk on fire"}


async def test_a_slow_probe_times_out() -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    checks = HealthChecks([Check("slow", slow, interval=10, timeout=0.05)])
    assert await _run_all(checks) == {"slow": "timed out"}


async def test_debug_health_answers_503_with_the_failing_checks() -> None:
    async def fails() -> None:
        raise OSError("nope")

    async def passes() -> None:
        return None

    checks = HealthChecks([Check("a", fails, 10), Check("b", passes, 10)])
    server = DebugServer(Config(), None, checks)
    status, _, body = server.answer("GET", "/debug/health")
    assert (status, json.loads(body)) == (200, {})  # nothing has failed yet
    await _run_all(checks)
    status, kind, body = server.answer("GET", "/debug/health")
    assert (status, json.loads(body)) == (503, {"a": "nope"})
    assert kind.startswith("application/json")
    assert server.answer("GET", "/nothing")[0] == 404
    assert server.answer("POST", "/debug/health")[0] == 405
