"""The examples of docs/: every ``python`` block runs (a block whose first line names a
``test_*.py`` file runs under pytest with the wharf plugin), and all of them pass mypy strict."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TEST_FILE = re.compile(r"# (test_\w+\.py)\n")


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for number, match in enumerate(_BLOCK.finditer(page.read_text()), 1):
            found.append((f"{page.stem}-{number}", match.group(1)))
    return found


EXAMPLES = _examples()


# The plugin as installing wharf registers it (entry point ``wharf``), also where the source
# tree runs without having been installed since the entry point was added.
_CONFTEST = """
import wharf.testing.plugin


def pytest_configure(config):
    if not config.pluginmanager.is_registered(wharf.testing.plugin):
        config.pluginmanager.register(wharf.testing.plugin, "wharf")
"""


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def test_every_page_has_examples() -> None:
    pages = {name.rsplit("-", 1)[0] for name, _ in EXAMPLES}
    assert pages >= {"library", "client", "cas", "pytest-plugin"}


@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    test_file = _TEST_FILE.match(code)
    if test_file is None:
        script = tmp_path / "example.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    else:
        (tmp_path / test_file.group(1)).write_text(code)
        (tmp_path / "conftest.py").write_text(_CONFTEST)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{name}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    for name, code in EXAMPLES:
        (tmp_path / f"example_{name.replace('-', '_')}.py").write_text(code)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**_environment(), "MYPYPATH": str(ROOT / "src")},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:]
