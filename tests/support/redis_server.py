"""A real ``redis-server`` on a free loopback port, without persistence, that a test may stop
and start again on the same port (to see what wharf does while Redis is away)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.server import free_port

__all__ = ["RedisServer", "needs_redis"]

#: Skips a test where redis-server is not installed (``.ci/run`` installs it).
needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


class RedisServer:
    def __init__(self, *arguments: str) -> None:
        self.arguments = arguments  # more redis-server options, such as --requirepass
        self.port = free_port()
        self._directory = tempfile.TemporaryDirectory(prefix="wharf-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._directory.name,
                *self.arguments,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.AuthenticationError:
                    return self  # up, and wants a password
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def client(self, password: str | None = None) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=password, socket_connect_timeout=0.5
        )

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._directory.cleanup()
