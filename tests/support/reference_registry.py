"""Run Debian's ``docker-registry`` (Distribution 2.8) as a reference server for tests.

Same shape as :class:`tests.support.server.WharfServer`: a context manager on a free loopback
port, with ``url``, ``host``, ``root`` and ``log()``. Give ``root`` to serve an existing
filesystem tree, for example one that wharf wrote, or ``storage`` for another driver (such as
``{"s3": {...}}``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.server import free_port, wait_for_http

__all__ = ["DOCKER_REGISTRY", "ReferenceRegistry", "docker_registry_binary"]

DOCKER_REGISTRY = "/usr/bin/docker-registry"

#: Environment variables that make Distribution 2.8 misbehave at start (it panics when
#: AWS_CA_BUNDLE is set, even with filesystem storage).
_UNWANTED_ENV = ("AWS_CA_BUNDLE",)


def docker_registry_binary() -> str | None:
    """The docker-registry executable, or None when it is not installed."""
    if os.access(DOCKER_REGISTRY, os.X_OK):
        return DOCKER_REGISTRY
    return shutil.which("docker-registry")


class ReferenceRegistry:
    """A ``docker-registry serve CONFIG`` process with filesystem storage at ``root``, or the
    driver ``storage`` names."""

    def __init__(
        self,
        *,
        root: Path | None = None,
        storage: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        binary = docker_registry_binary()
        if binary is None:
            raise FileNotFoundError("docker-registry is not installed")
        self.binary = binary
        self._tmp = tempfile.TemporaryDirectory(prefix="wharf-reference-")
        self.root = root if root is not None else Path(self._tmp.name) / "data"
        self.port = port or free_port()
        document: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                **(storage or {"filesystem": {"rootdirectory": str(self.root)}}),
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "wharf-reference-secret"},
        }
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        self.config_path = Path(self._tmp.name) / "config.yml"
        self.config_path.write_text(yaml.safe_dump(document))
        self.log_path = Path(self._tmp.name) / "registry.log"
        merged = {**os.environ, **(env or {})}
        self.env = {key: value for key, value in merged.items() if key not in _UNWANTED_ENV}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ReferenceRegistry:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.binary, "serve", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_http(self.url + "/v2/", process=self.process)
        except Exception:
            self.stop()
            raise RuntimeError("docker-registry did not start:\n" + self.log()[-4000:]) from None
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> ReferenceRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop for the duration of the block, then start again on the same port and data."""
        self.stop()
        try:
            yield
        finally:
            self.start()
