"""The distribution built once per test session: an sdist and a wheel, as CI publishes them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ROOT", "Dist", "clean_environment", "dist"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dist:
    directory: Path
    wheel: Path
    sdist: Path


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without what would point a new interpreter at this checkout (or a
    tracing collector), and with pip's cache off."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not name.startswith("OTEL_")
    }
    environ.update(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return environ


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build``: the sdist, then the wheel built from it."""
    directory = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(directory), str(ROOT)],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = directory.glob("wharf_registry-*.whl")
    (sdist,) = directory.glob("wharf_registry-*.tar.gz")
    return Dist(directory, wheel, sdist)
