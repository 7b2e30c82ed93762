"""Registries to test against: wharf served in this process (a thread of its own), or a real
``wharf serve`` process; each on a free loopback port, with in-memory or temporary-directory
storage and, when asked, htpasswd auth."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from wharf.client import RegistryClient, static

__all__ = ["RunningRegistry", "serve_in_process", "serve_process"]

Storage = Literal["memory", "filesystem"]
_START_TIMEOUT = 30.0


class RunningRegistry:
    """A registry under test: its ``url`` (``http://127.0.0.1:<port>``), ``host``
    (``127.0.0.1:<port>``, as image references and skopeo want it), the ``credentials`` it
    requires (None without auth), its storage ``root`` (None in memory), and ``client``, a
    :class:`wharf.client.RegistryClient` logged in with those credentials."""

    def __init__(
        self,
        port: int,
        *,
        credentials: tuple[str, str] | None,
        root: Path | None,
        config_path: Path,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.host = f"127.0.0.1:{port}"
        self.credentials = credentials
        self.root = root
        self.config_path = config_path
        self._client: RegistryClient | None = None

    @property
    def client(self) -> RegistryClient:
        if self._client is None:
            login = static(*self.credentials) if self.credentials is not None else None
            self._client = RegistryClient(self.url, credentials=login)
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"<RunningRegistry {self.url}>"


def _free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _write_config(
    directory: Path,
    port: int,
    storage: Storage,
    auth: tuple[str, str] | None,
    config: Mapping[str, Any] | None,
) -> tuple[Path, Path | None]:
    root = directory / "data" if storage == "filesystem" else None
    if storage not in ("memory", "filesystem"):
        raise ValueError(f"storage must be 'memory' or 'filesystem', not {storage!r}")
    document: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "warn"},
        "storage": {
            "delete": {"enabled": True},
            **({"filesystem": {"rootdirectory": str(root)}} if root else {"inmemory": {}}),
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": os.urandom(16).hex(), "workers": 1},
    }
    if auth is not None:
        import bcrypt

        user, password = auth
        entry = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        htpasswd = directory / "htpasswd"
        htpasswd.write_text(f"{user}:{entry}\n")
        document["auth"] = {"htpasswd": {"realm": "wharf-test", "path": str(htpasswd)}}
    for key, value in (config or {}).items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(document))
    return path, root


def _wait(url: str, alive: Any) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the registry stopped before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any answer (401 with auth) means it is up
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"no answer from {url} within {_START_TIMEOUT:.0f}s")


@contextlib.contextmanager
def serve_in_process(
    *,
    storage: Storage = "memory",
    auth: tuple[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Iterator[RunningRegistry]:
    """wharf's app under uvicorn in a thread of this process, stopped on exit. ``config``:
    more ``config.yml`` sections, merged into the defaults."""
    import uvicorn

    from wharf.api.app import create_app
    from wharf.config.load import load_config

    directory = Path(tempfile.mkdtemp(prefix="wharf-registry-"))
    sock = _free_socket()
    port = int(sock.getsockname()[1])
    try:
        config_path, root = _write_config(directory, port, storage, auth, config)
        app = create_app(load_config(str(config_path), {}))
        server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", lifespan="on", loop="asyncio", access_log=False
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="wharf-registry", daemon=True
        )
        thread.start()
        registry = RunningRegistry(port, credentials=auth, root=root, config_path=config_path)
        try:
            _wait(registry.url + "/v2/", thread.is_alive)
            yield registry
        finally:
            registry.close_client()
            server.should_exit = True
            thread.join(timeout=30)
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def serve_process(
    *,
    storage: Storage = "filesystem",
    auth: tuple[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Iterator[RunningRegistry]:
    """A real ``wharf serve`` process (``python -m wharf``), stopped with SIGTERM on exit."""
    directory = Path(tempfile.mkdtemp(prefix="wharf-registry-"))
    with _free_socket() as sock:
        port = int(sock.getsockname()[1])
    process: subprocess.Popen[bytes] | None = None
    try:
        config_path, root = _write_config(directory, port, storage, auth, config)
        log = directory / "server.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "wharf", "serve", str(config_path)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        registry = RunningRegistry(port, credentials=auth, root=root, config_path=config_path)
        try:
            _wait(registry.url + "/v2/", lambda: process is not None and process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}:\n{log.read_text(errors='replace')[-4000:]}") from None
        try:
            yield registry
        finally:
            registry.close_client()
    finally:
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
