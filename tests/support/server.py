"""Start real wharf server processes for tests: each on a free loopback port, stopped after."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["WharfServer", "free_port", "wait_for_http"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is up
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"no answer from {url} within {timeout}s")


class WharfServer:
    """A ``python -m wharf serve CONFIG`` process with a config written from a dict.

    ``storage`` defaults to a fresh filesystem root in a temporary directory; pass
    ``{"inmemory": {}}`` for in-memory storage. Other top-level sections are merged in.
    """

    def __init__(
        self,
        *,
        storage: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="wharf-test-")
        self.root = Path(self._tmp.name) / "data"
        self.port = port or free_port()
        storage = (
            storage if storage is not None else {"filesystem": {"rootdirectory": str(self.root)}}
        )
        storage = {"delete": {"enabled": True}, **storage}
        document: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn"},
            "storage": storage,
            "http": {
                "addr": f"127.0.0.1:{self.port}",
                "secret": "wharf-test-secret",
                "workers": workers,
            },
        }
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        self.config_path = Path(self._tmp.name) / "config.yml"
        self.config_path.write_text(yaml.safe_dump(document))
        self.log_path = Path(self._tmp.name) / "server.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> WharfServer:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wharf", "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        try:
            wait_for_http(self.url + "/v2/", process=self.process)
        except Exception:
            self.stop()
            raise RuntimeError(
                "wharf did not start:\n" + self.log_path.read_text()[-4000:]
            ) from None
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

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> WharfServer:
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
