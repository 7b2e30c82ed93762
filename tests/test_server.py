"""The server runner: workers, shared configuration and state, graceful stop, TLS.

The real-process tests run ``wharf.server.run`` with the probe app below instead of the
registry, so that they check only what the runner promises to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import free_port, wait_for_http
from wharf.coherence.shared import shared_state_path
from wharf.config.load import ConfigError, load_config
from wharf.config.model import Config, HTTPConfig, StorageConfig
from wharf.server import (
    ASGIApp,
    Listener,
    config_digest,
    listener,
    worker_app,
    worker_count,
)
from wharf.worker_environment import (
    APP_FACTORY_ENV,
    CONFIG_DIGEST_ENV,
    CONFIG_ENV,
    WorkerEnvironment,
)

ROOT = Path(__file__).resolve().parents[1]
PROBE_DIR_ENV = "WHARF_TEST_PROBE_DIR"
PROBE_FAIL_ENV = "WHARF_TEST_PROBE_FAIL"

# --- the probe app, imported by the worker processes -----------------------------------------


def _record_start(config: Config) -> None:
    environment = WorkerEnvironment.read()
    report = {
        "workers": str(environment.workers),
        "state": shared_state_path(config.storage),
        "config": environment.config_path,
        "digest": config_digest(config),
        "secret": config.http.secret,
        "generated_secret": environment.generated_secret or None,
        "instance": environment.instance_id,
    }
    probe = Path(os.environ[PROBE_DIR_ENV])
    (probe / f"started-{os.getpid()}.json").write_text(json.dumps(report))


def _record_stop() -> None:
    (Path(os.environ[PROBE_DIR_ENV]) / f"stopped-{os.getpid()}").touch()


def create_probe_app(config: Config) -> ASGIApp:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if os.environ.get(PROBE_FAIL_ENV):
                        await send({"type": "lifespan.startup.failed", "message": "probe"})
                        return
                    _record_start(config)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    _record_stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/slow":
            await asyncio.sleep(1.5)
        body = json.dumps({"pid": os.getpid()}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


# --- running it ------------------------------------------------------------------------------

RUNNER = textwrap.dedent(
    """\
    import os, sys
    from wharf.config.load import load_config
    from wharf.logs import setup_logging
    from wharf.server import run

    if __name__ == "__main__":
        config = load_config(sys.argv[1] if len(sys.argv) > 1 else None, os.environ)
        setup_logging(config.log)
        run(config, app_factory="tests.test_server:create_probe_app")
    """
)


class Probe:
    def __init__(self, tmp_path: Path, env: Mapping[str, str], config: str | None) -> None:
        self.dir = tmp_path / "probe"
        self.dir.mkdir(parents=True)
        self.log_path = tmp_path / "server.log"
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "WHARF_"))},
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "REGISTRY_HTTP_ADDR": f"127.0.0.1:{self.port}",
            PROBE_DIR_ENV: str(self.dir),
            **env,
        }
        arguments = [sys.executable, "-c", RUNNER, *([config] if config else [])]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                arguments,
                cwd=tmp_path,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def started(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = sorted(self.dir.glob("started-*.json"))
            if len(files) >= count:
                time.sleep(0.2)  # a report may still be being written
                return [json.loads(file.read_text()) for file in files]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{count} workers did not start:\n{self.log()}")

    def stopped_pids(self) -> set[str]:
        return {path.name.removeprefix("stopped-") for path in self.dir.glob("stopped-*")}

    def terminate(self, timeout: float = 15.0) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Any]:
    probes: list[Probe] = []

    def start(env: Mapping[str, str] | None = None, config: str | None = None) -> Probe:
        started = Probe(tmp_path / str(len(probes)), env or {}, config)
        probes.append(started)
        return started

    yield start
    for started in probes:
        started.kill()


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, timeout=10, **options)


@pytest.mark.server
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_workers_share_configuration_environment_and_state(
    probe: Any, tmp_path: Path, server: str
) -> None:
    config_path = tmp_path / "config.yml"
    config_path.write_text("version: 0.1\nlog: {level: warn}\nhttp: {secret: s3cret, workers: 2}\n")
    started: Probe = probe({"REGISTRY_HTTP_SERVER": server}, str(config_path))
    reports = started.started(2)
    expected = load_config(str(config_path), started.env)
    assert {report["workers"] for report in reports} == {"2"}
    assert {report["secret"] for report in reports} == {"s3cret"}
    assert {report["generated_secret"] for report in reports} == {None}
    assert {report["config"] for report in reports} == {str(config_path)}
    assert {report["digest"] for report in reports} == {config_digest(expected)}
    assert len({report["instance"] for report in reports}) == 1
    states = {report["state"] for report in reports}
    assert len(states) == 1
    state = states.pop()
    if os.path.isdir("/dev/shm"):
        assert state.startswith("/dev/shm/")

    url = f"http://127.0.0.1:{started.port}"
    wait_for_http(url + "/", process=started.process)
    slow: list[httpx.Response] = []
    request = threading.Thread(target=lambda: slow.append(get(url + "/slow")))
    request.start()
    time.sleep(0.5)
    begun = time.monotonic()
    assert started.terminate() == 0, started.log()
    request.join(10)
    assert [response.status_code for response in slow] == [200]  # the request in flight finished
    assert time.monotonic() - begun < 10
    assert len(started.stopped_pids()) == 2  # each worker ran its lifespan shutdown


@pytest.mark.server
def test_workers_share_a_generated_secret(probe: Any) -> None:
    started: Probe = probe({"REGISTRY_HTTP_WORKERS": "2"})
    reports = started.started(2)
    (generated,) = {report["generated_secret"] for report in reports}
    assert re.fullmatch("[0-9a-f]{64}", generated)
    assert {report["secret"] for report in reports} == {""}
    assert started.terminate() == 0
    assert "no http.secret: upload URLs are signed with a key kept in the storage" in (
        started.log()
    )


@pytest.mark.server
def test_inmemory_storage_runs_one_worker(probe: Any) -> None:
    started: Probe = probe({"REGISTRY_STORAGE": "inmemory", "REGISTRY_HTTP_WORKERS": "3"})
    (report,) = started.started(1)
    assert report["workers"] == "1"
    time.sleep(0.5)
    assert len(list(started.dir.glob("started-*.json"))) == 1
    assert started.terminate() == 0
    assert "in-memory storage cannot be shared between processes" in started.log()


@pytest.mark.server
def test_failing_lifespan_startup_stops_the_server(probe: Any) -> None:
    started: Probe = probe(
        {PROBE_FAIL_ENV: "1", "REGISTRY_HTTP_WORKERS": "1", "REGISTRY_LOG_LEVEL": "debug"}
    )
    assert started.process.wait(30) != 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ),
            *("-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.server
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_tls(probe: Any, certificate: tuple[Path, Path], server: str) -> None:
    cert, key = certificate
    started: Probe = probe(
        {
            "REGISTRY_HTTP_SERVER": server,
            "REGISTRY_HTTP_WORKERS": "1",
            "REGISTRY_HTTP_TLS_CERTIFICATE": str(cert),
            "REGISTRY_HTTP_TLS_KEY": str(key),
        }
    )
    started.started(1)
    context = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 10
    while True:
        try:
            response = get(f"https://127.0.0.1:{started.port}/", verify=context)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert response.status_code == 200
    assert started.terminate() == 0


@pytest.mark.server
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_unix_socket(probe: Any, tmp_path: Path, server: str) -> None:
    path = tmp_path / "wharf.sock"
    started: Probe = probe(
        {
            "REGISTRY_HTTP_SERVER": server,
            "REGISTRY_HTTP_WORKERS": "1",
            "REGISTRY_HTTP_NET": "unix",
            "REGISTRY_HTTP_ADDR": str(path),
        }
    )
    started.started(1)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=10) as client:
        deadline = time.monotonic() + 10
        while True:
            try:
                response = client.get("http://wharf/")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    assert response.status_code == 200
    assert started.terminate() == 0


# --- in-process ------------------------------------------------------------------------------


def test_worker_count() -> None:
    cores = os.cpu_count() or 1
    assert worker_count(Config()) == cores
    assert worker_count(Config(http=HTTPConfig(workers=3))) == 3
    inmemory = StorageConfig(driver="inmemory", parameters={})
    assert worker_count(Config(storage=inmemory, http=HTTPConfig(workers=3))) == 1


def test_listener() -> None:
    assert listener(Config()) == Listener(host="0.0.0.0", port=5000)
    assert str(listener(Config())) == "http://0.0.0.0:5000"
    assert listener(Config(http=HTTPConfig(addr="localhost:5001"))).host in ("127.0.0.1", "::1")
    assert str(listener(Config(http=HTTPConfig(addr="[::1]:5002")))) == "http://[::1]:5002"
    unix = listener(Config(http=HTTPConfig(net="unix", addr="/run/wharf.sock")))
    assert str(unix) == "unix:/run/wharf.sock"
    with pytest.raises(ConfigError, match=r"^http\.addr: cannot resolve"):
        listener(Config(http=HTTPConfig(addr="no-such-host.invalid:5000")))


def test_config_digest_follows_the_configuration() -> None:
    assert config_digest(Config()) == config_digest(Config())
    assert config_digest(Config()) != config_digest(Config(http=HTTPConfig(secret="x")))


def test_worker_app_builds_the_app_from_the_exported_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nhttp: {secret: one}\n")
    config = load_config(str(path), {})
    monkeypatch.setenv(CONFIG_ENV, str(path))
    monkeypatch.setenv(CONFIG_DIGEST_ENV, config_digest(config))
    monkeypatch.setenv(APP_FACTORY_ENV, f"{__name__}:create_probe_app")
    assert callable(worker_app())

    path.write_text("version: 0.1\nhttp: {secret: two}\n")
    with pytest.raises(RuntimeError, match="changed since wharf started"):
        worker_app()
