"""The deployment files beside the image: the systemd unit passes ``systemd-analyze verify``,
the compose file's registry settings are a configuration wharf accepts and means as written,
the image's configuration is valid, and the image's health check tells a serving registry from
a missing one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ROOT
from tests.support.server import WharfServer, free_port
from wharf.config.load import load_config

DEPLOY = ROOT / "deploy"
_INTERPOLATION = re.compile(r"\$\{([A-Z_]+):-([^}]*)\}")


def _wharf_command() -> str:
    command = shutil.which("wharf")
    assert command is not None, "wharf is installed with the package"
    return command


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this installation's.
    unit = (DEPLOY / "wharf.service").read_text()
    assert "ExecStart=/opt/wharf/bin/wharf serve /etc/wharf/config.yml" in unit
    copy = tmp_path / "wharf.service"
    copy.write_text(unit.replace("/opt/wharf/bin/wharf", _wharf_command()))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "wharf.service" not in result.stderr, result.stderr
    # A refused configuration exits 2 (wharf's usage status): systemd must not loop on it.
    assert "RestartPreventExitStatus=2" in unit


def _compose_environment() -> dict[str, str]:
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    environment: dict[str, Any] = compose["services"]["wharf"]["environment"]
    # What compose makes of ${NAME:-default} with NAME unset.
    return {
        name: _INTERPOLATION.sub(lambda match: match.group(2), str(value))
        for name, value in environment.items()
    }


def test_compose_settings_are_a_valid_s3_registry_with_redis() -> None:
    environment = _compose_environment()
    assert all(name.startswith("REGISTRY_") for name in environment)
    config = load_config(str(DEPLOY / "config.yml"), environment)
    assert config.storage.driver == "s3"
    assert config.storage.parameters["bucket"] == "registry"
    assert config.storage.parameters["regionendpoint"] == "http://minio:9000"
    assert config.storage.parameters["secretkey"] == "wharf-demo-secret"
    assert config.storage.redirect_disabled
    assert config.storage.delete_enabled
    assert config.redis is not None
    assert config.redis.addr == "redis:6379"
    result = subprocess.run(
        [sys.executable, "-m", "wharf", "config", "check", str(DEPLOY / "config.yml")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **environment},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wharf-demo-secret" not in result.stdout  # secrets are not printed


def test_image_configuration_is_distributions_layout() -> None:
    config = load_config(str(DEPLOY / "config.yml"), {})
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters["rootdirectory"] == "/var/lib/registry"
    assert config.http.addr == ":5000"
    assert config.health.storage_driver.enabled


def _healthcheck(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **environment},
        timeout=30,
        check=False,
    )


@pytest.mark.server
def test_healthcheck_tells_a_serving_registry_from_none() -> None:
    with WharfServer() as server:
        assert _healthcheck({"REGISTRY_HTTP_ADDR": f":{server.port}"}).returncode == 0
        url = server.url + "/v2/"
        assert _healthcheck({"WHARF_HEALTHCHECK_URL": url}).returncode == 0
    closed = _healthcheck({"REGISTRY_HTTP_ADDR": f":{free_port()}"})
    assert closed.returncode == 1
    assert closed.stderr.startswith("unhealthy: http://127.0.0.1:")
