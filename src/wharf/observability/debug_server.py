"""The debug listener (``http.debug.addr``): Prometheus ``/metrics`` and ``/debug/health``.

It runs in a process of its own, started by the server launcher with the listening socket
already bound (see ``debug_listener``), once per instance however many workers serve:

- the workers only count, in memory; a scrape here adds up the snapshots they write (so the
  hot path pays nothing for the scrape, and nothing is shared or locked between processes);
- the health checks run once per instance, not once per worker, and the storage root is
  stat'ed by one process;
- the launcher's own process belongs to granian or uvicorn, which fork the workers from it: a
  server thread there would be forked into every worker.

The process ends with the launcher: on SIGTERM, and when its parent goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys

from wharf.config.load import load_config
from wharf.config.model import Config
from wharf.observability.exposition import CONTENT_TYPE, merge, read_snapshots, render
from wharf.observability.health import HealthChecks, build_checks
from wharf.observability.metrics import WorkerMetrics
from wharf.observability.process import process_samples
from wharf.worker_environment import WorkerEnvironment

__all__ = ["DebugServer", "main"]

log = logging.getLogger("wharf.debug")

_MAX_HEAD = 16 * 1024


class DebugServer:
    def __init__(self, config: Config, metrics_dir: str | None, health: HealthChecks) -> None:
        debug = config.http.debug
        self.metrics_path = debug.prometheus_path if debug and debug.prometheus_enabled else None
        self.metrics_dir = metrics_dir
        self.health = health
        self.metrics = WorkerMetrics()  # this process's own: the health checks

    def metrics_text(self) -> str:
        snapshots = read_snapshots(self.metrics_dir) if self.metrics_dir else []
        own = self.metrics.snapshot()
        own["pid"] = os.getpid()
        own["samples"].extend(list(sample) for sample in process_samples())
        # The launcher writes no snapshot: its process metrics are read from here.
        launcher = os.getppid()
        parent = {"pid": launcher, "samples": [list(s) for s in process_samples(launcher)]}
        return render(merge([*snapshots, own, parent]))

    def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a request."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == self.metrics_path:
            return 200, CONTENT_TYPE, self.metrics_text().encode()
        if path == "/debug/health":
            failing = self.health.failing()
            body = json.dumps(failing, sort_keys=True).encode() + b"\n"
            return (503 if failing else 200), "application/json; charset=utf-8", body
        return 404, "text/plain", b"404 page not found\n"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3:
            status, kind, body = 400, "text/plain", b"bad request\n"
            method = "GET"
        else:
            method, target = parts[0], parts[1]
            status, kind, body = self.answer(method, target.split("?", 1)[0])
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Unavailable"}
        response = (
            f"HTTP/1.1 {status} {reason.get(status, 'Bad Request')}\r\n"
            f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(response if method == "HEAD" else response + body)
            await writer.drain()
        writer.close()

    async def serve(self, sock: socket.socket) -> None:
        server = await asyncio.start_server(self.handle, sock=sock, limit=_MAX_HEAD)
        self.health.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        parent = os.getppid()

        async def orphaned() -> None:
            while True:
                await asyncio.sleep(1.0)
                if os.getppid() != parent:  # the launcher died without stopping us
                    stop.set()
                    return

        watcher = loop.create_task(orphaned())
        try:
            async with server:
                await stop.wait()
        finally:
            watcher.cancel()
            await self.health.aclose()


async def _run(sock: socket.socket) -> None:
    from wharf.storage.driver.factory import create_driver

    environment = WorkerEnvironment.read()
    config = load_config(environment.config_path or None, os.environ, lenient=True)
    # In-memory storage lives in the worker's memory: there is nothing to check from here.
    checked = config.health.storage_driver.enabled and config.storage.driver != "inmemory"
    driver = create_driver(config.storage) if checked else None
    try:
        metrics = WorkerMetrics()
        health = HealthChecks(build_checks(config, driver), metrics)
        server = DebugServer(config, environment.metrics_dir or None, health)
        server.metrics = metrics
        await server.serve(sock)
    finally:
        if driver is not None:
            await driver.close()


def main() -> int:
    from wharf.logs import setup_logging

    environment = WorkerEnvironment.read()
    config = load_config(environment.config_path or None, os.environ, lenient=True)
    setup_logging(config.log)
    if environment.debug_fd is None:
        raise SystemExit("wharf.observability.debug_server runs under wharf serve only")
    sock = socket.socket(fileno=environment.debug_fd)
    try:
        asyncio.run(_run(sock))
    except KeyboardInterrupt:  # pragma: no cover - SIGINT before the handler is set
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
