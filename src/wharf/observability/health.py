"""Health checks as Distribution runs them: the storage driver, files, HTTP URIs, TCP addresses.

Each check runs at start and then every ``interval``; it turns unhealthy after ``threshold``
failures in a row and healthy again with one success. ``failing()`` is what ``/debug/health``
shows: the failing checks by name, with the last error (Distribution's names: the storage
check is ``storagedriver_<driver>``, the others are named by their file, URI or address).

    storage  a stat of the storage root; a root that does not exist yet is an answer, not a
             failure (an empty bucket has no root object)
    file     fails while the file exists: operators create it to take an instance out of a
             load balancer
    http     a HEAD request that must answer ``statuscode``
    tcp      a connection that must open within ``timeout``
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wharf.config.model import Config
from wharf.observability.metrics import Sample, WorkerMetrics
from wharf.storage.driver.base import PathNotFound, StorageDriver

__all__ = ["Check", "HealthChecks", "build_checks"]

log = logging.getLogger("wharf.health")


class CheckFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: Callable[[], Awaitable[None]]  # raises when unhealthy
    interval: float
    threshold: int = 1
    timeout: float | None = None


def _storage_probe(driver: StorageDriver) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        with contextlib.suppress(PathNotFound):
            await driver.stat("/")

    return probe


def _file_probe(path: str) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        if await asyncio.to_thread(os.path.lexists, path):
            raise CheckFailed("file exists")

    return probe


def _head(uri: str, headers: dict[str, tuple[str, ...]], seconds: float) -> int:
    request = urllib.request.Request(uri, method="HEAD")
    for name, values in headers.items():
        for value in values:
            request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=seconds) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _http_probe(
    uri: str, headers: dict[str, tuple[str, ...]], expected: int, seconds: float
) -> Callable[[], Awaitable[None]]:
    async def probe() -> None:
        try:
            status = await asyncio.to_thread(_head, uri, headers, seconds)
        except OSError as error:
            raise CheckFailed(f"error while checking {uri}: {error}") from error
        if status != expected:
            raise CheckFailed(f"downstream service returned unexpected status: {status}")

    return probe


def _tcp_probe(addr: str, seconds: float) -> Callable[[], Awaitable[None]]:
    host, _, port = addr.rpartition(":")

    async def probe() -> None:
        try:
            async with asyncio.timeout(seconds):
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except (OSError, TimeoutError) as error:
            raise CheckFailed(f"connection to {addr} failed: {error or 'timed out'}") from error
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return probe


def build_checks(config: Config, driver: StorageDriver | None) -> list[Check]:
    health = config.health
    checks: list[Check] = []
    storage = health.storage_driver
    if storage.enabled and driver is not None:
        interval = storage.interval.total_seconds()
        checks.append(
            Check(
                f"storagedriver_{config.storage.driver}",
                _storage_probe(driver),
                interval,
                storage.threshold,
                interval,
            )
        )
    for file in health.files:
        checks.append(Check(file.file, _file_probe(file.file), file.interval.total_seconds()))
    for http in health.http:
        timeout = http.timeout.total_seconds()
        probe = _http_probe(http.uri, http.headers, http.status_code, timeout)
        checks.append(Check(http.uri, probe, http.interval.total_seconds(), http.threshold))
    for tcp in health.tcp:
        probe = _tcp_probe(tcp.addr, tcp.timeout.total_seconds())
        checks.append(Check(tcp.addr, probe, tcp.interval.total_seconds(), tcp.threshold))
    return checks


class HealthChecks:
    def __init__(self, checks: list[Check], metrics: WorkerMetrics | None = None) -> None:
        self.checks = checks
        self._metrics = metrics or WorkerMetrics()
        self._failures = {check.name: 0 for check in checks}
        self._errors: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics.collect(self._samples)

    def failing(self) -> dict[str, str]:
        return {
            check.name: self._errors[check.name]
            for check in self.checks
            if self._failures[check.name] >= check.threshold
        }

    def _samples(self) -> list[Sample]:
        failing = self.failing()
        return [
            ("wharf_health_check_up", {"check": c.name}, 0.0 if c.name in failing else 1.0)
            for c in self.checks
        ]

    async def run_once(self, check: Check) -> None:
        try:
            if check.timeout is None:
                await check.probe()
            else:
                async with asyncio.timeout(check.timeout):
                    await check.probe()
        except Exception as error:
            message = str(error) or type(error).__name__
            if isinstance(error, TimeoutError):
                message = "timed out"
            self._failures[check.name] += 1
            self._errors[check.name] = message
            self._metrics.inc("wharf_health_check_failures_total", check=check.name)
            if self._failures[check.name] == check.threshold:
                log.warning("health check %s failing: %s", check.name, message)
            return
        if self._failures[check.name] >= check.threshold:
            log.info("health check %s passing again", check.name)
        self._failures[check.name] = 0
        self._errors.pop(check.name, None)

    async def _loop(self, check: Check) -> None:
        while True:
            await self.run_once(check)
            await asyncio.sleep(check.interval)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(check)) for check in self.checks]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
