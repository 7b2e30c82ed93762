"""The benchmark harness end to end: a one-round smoke run with tiny sizes on both registries.

No timing is asserted; the run must finish and produce the report with every row filled (or,
for S3 storage while its test servers do not exist, marked as skipped).
"""

from __future__ import annotations

import json
import shutil
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
    pytest.mark.client,
    pytest.mark.skipif(docker_registry_binary() is None, reason="docker-registry is not installed"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("wrk", "skopeo", "cc")),
        reason="wrk, skopeo and a C compiler are needed (bench/run installs them)",
    ),
]

TINY = [
    "--quick",
    "--seconds=1",
    "--blob-mib=4",
    "--chunk-mib=1",
    "--pull-mib=8",
    "--rss-mib=8",
    "--image-mb=2",
    "--tags=50",
    "--repositories=60",
    "--catalog-page=20",
]


def test_quick_run_reports_every_row(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    samples = tmp_path / "samples.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            *TINY,
            f"--data-dir={tmp_path / 'data'}",
            f"--output={report}",
            f"--json={samples}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    document = json.loads(samples.read_text())
    text = report.read_text()
    assert done.stdout.strip() == text.strip()

    rows = {
        line.split(" | ")[0].removeprefix("| "): line
        for line in text.split("## Machine")[0].splitlines()
        if line.startswith("| ") and not line.startswith("| Measurement")
    }
    assert len(document["metrics"]) >= 20
    for metric in document["metrics"]:
        label = f"{metric['label']} ({metric['unit']})"
        assert label in rows, f"no row for {label}"
        if metric["key"] in document["skipped"]:
            assert "skipped" in rows[label]
            continue
        for registry in ("wharf", "docker-registry"):
            values = document["samples"][metric["key"]][registry]
            assert len(values) == 1, (metric["key"], registry, values)
            # CPU figures of tiny samples can round to zero clock ticks.
            assert values[0] > 0 or metric["group"] == "cpu", (metric["key"], registry, values)
        wharf, reference, ratio = (cell.strip() for cell in rows[label].split("|")[2:5])
        assert wharf != "-", rows[label]
        assert reference != "-", rows[label]
        assert ratio.endswith("x"), rows[label]

    for heading in ("## Machine", "## Method", "## Client ceiling", "## Every round"):
        assert heading in text
    assert "Blob pull, 4 streams" in text
    assert "manifest GET by tag, hload" in text
    assert "skopeo push of the image to the sink" in text
    assert "skopeo pull of the image from the sink" in text
    assert "skopeo push + pull against the sink / docker-registry's median" in text
