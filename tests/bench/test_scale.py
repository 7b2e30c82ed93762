"""The scale benchmark as a correctness test: a small tree in Distribution's layout served by
wharf and docker-registry side by side, every page and the delete checked against what the
tree holds (bench/scale.py raises on any difference). No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.reference_registry import docker_registry_binary

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.server,
    pytest.mark.reference,
    pytest.mark.skipif(docker_registry_binary() is None, reason="docker-registry is not installed"),
]


@pytest.mark.parametrize(
    "store",
    ["filesystem", pytest.param("s3", marks=pytest.mark.s3)],
)
def test_small_scale_run_checks_every_answer(tmp_path: Path, store: str) -> None:
    report = tmp_path / "RESULTS.md"
    report.write_text("# results\n\nabove\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--repositories=120",
            "--tags=150",
            "--s3-repositories=60",
            "--s3-tags=80",
            "--page=25",
            "--rounds=2",
            f"--store={store}",
            f"--output={report}",
            f"--workdir={tmp_path / 'work'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = report.read_text()
    assert text.startswith("# results\n\nabove\n")
    assert text.count("<!-- bench.scale: start -->") == 1
    listings = text.split("Offline `garbage-collect`")[0]
    rows = [line for line in listings.splitlines() if line.startswith(f"| {store}, ")]
    assert len(rows) == 5
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")]
        assert cells[3] != "-", row  # wharf measured
        assert cells[4] != "-", row  # docker-registry measured
    assert "catalog index build" in text
    # Both collected the unreferenced blobs, and only those (the run checks).
    collected = text.split("Offline `garbage-collect`")[1]
    size = 120 if store == "filesystem" else 60
    assert f"| {store}, {size} repositories |" in collected
