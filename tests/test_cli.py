"""The ``wharf`` command: version, configuration errors, and ``wharf serve`` for real."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import wharf
from tests.support.server import free_port, wait_for_http
from wharf.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
needs_app = pytest.mark.skipif(
    importlib.util.find_spec("wharf.api.app") is None, reason="wharf.api.app does not exist yet"
)


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "WHARF_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return {**env, **overrides}


def wharf_command(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wharf", *args],
        cwd=cwd,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    result = wharf_command("--version")
    assert result.returncode == 0
    assert result.stdout == f"wharf {wharf.__version__}\n"
    assert re.fullmatch(r"wharf \d+\.\d+\.\d+\S*\n", result.stdout)


def test_a_command_is_required() -> None:
    result = wharf_command()
    assert result.returncode == 2
    assert "usage: wharf" in result.stderr


def test_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nhttp:\n  workers: -1\n")
    result = wharf_command("serve", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("wharf: error: http.workers: ")
    assert not (tmp_path / "wharf-data").exists()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["serve", "/nonexistent/config.yml"], {}, "cannot read configuration"),
        (["serve"], {"REGISTRY_LOG_LEVEL": "loud"}, "log.level (from REGISTRY_LOG_LEVEL)"),
        (["serve"], {"REGISTRY_STORAGE": "ftp"}, "storage.ftp: unknown storage driver"),
        (["serve"], {"REGISTRY_HTTP_ADDR": "no-such-host.invalid:5000"}, "http.addr"),
    ],
)
def test_configuration_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("wharf: error: ")
    assert expected in captured.err
    assert captured.err.count("\n") == 1


def test_an_uncreatable_storage_root_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    root = tmp_path / "file" / "data"
    result = wharf_command(
        "serve",
        cwd=tmp_path,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=str(root),
        REGISTRY_HTTP_ADDR=f"127.0.0.1:{free_port()}",  # should it start after all
    )
    assert result.returncode == 2
    assert result.stderr.startswith("wharf: error: storage.filesystem.rootdirectory: ")


class Serving:
    """``wharf serve`` in a fresh directory; stderr goes to a file so it never blocks."""

    def __init__(self, cwd: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "wharf.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wharf", "serve", *args],
                cwd=cwd,
                env=environment(REGISTRY_HTTP_ADDR=f"127.0.0.1:{self.port}", **env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.mark.server
@needs_app
def test_serve_without_a_config(tmp_path: Path) -> None:
    serving = Serving(tmp_path)
    try:
        wait_for_http(serving.url + "/v2/", process=serving.process)
        response = httpx.get(serving.url + "/v2/", timeout=10)
        assert response.status_code == 200
        first = serving.log().splitlines()[0]
        root = tmp_path / "wharf-data"
        assert f"wharf {wharf.__version__} listening on 127.0.0.1:{serving.port}" in first
        assert f"storage filesystem at {root}," in first
        assert "(config: defaults)" in first
        assert root.is_dir()
        begun = time.monotonic()
        assert serving.stop() == 0, serving.log()
        assert time.monotonic() - begun < 10
    finally:
        serving.kill()


@pytest.mark.server
@needs_app
def test_serve_lenient_warns_about_unknown_keys_and_forces_one_inmemory_worker(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: inmemory\nhttp: {workers: 3}\nnonsense: 1\n")
    serving = Serving(tmp_path, "--lenient", str(config))
    try:
        wait_for_http(serving.url + "/v2/", process=serving.process)
        lines = serving.log().splitlines()
        assert "config: nonsense: unknown key, ignored" in lines[0]
        assert "storage inmemory, 1 worker " in lines[1]
        assert f"(config: {config})" in lines[1]
        assert serving.stop() == 0, serving.log()
        assert not (tmp_path / "wharf-data").exists()
    finally:
        serving.kill()


@pytest.mark.server
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_port_in_use_is_one_error_line(tmp_path: Path, server: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wharf_command(
            "serve",
            cwd=tmp_path,
            REGISTRY_HTTP_SERVER=server,
            REGISTRY_HTTP_ADDR=f"127.0.0.1:{port}",
            REGISTRY_STORAGE="inmemory",
            REGISTRY_HTTP_SECRET="secret",
            REGISTRY_LOG_LEVEL="warn",
        )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert f"cannot listen on http://127.0.0.1:{port}: " in lines[0]
