"""``wharf garbage-collect``: what it prints, what it removes, and how it fails."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.registry.gc.support import Pusher, Tree, sha256
from wharf.api.app import create_app
from wharf.cli import main
from wharf.config.load import load_config
from wharf.registry.gc import FileCoordination
from wharf.registry.gc.progress import LineProgress, TerminalProgress, progress_for

SRC = Path(__file__).resolve().parents[1] / "src"


def write_config(tmp_path: Path, **storage: object) -> Path:
    document = {
        "version": "0.1",
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": str(tmp_path / "data")},
            "delete": {"enabled": True},
            "gc": {"lockdir": str(tmp_path / "gc"), **storage},
        },
        "http": {"secret": "test"},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def populate(config: Path) -> dict[str, str]:
    """An image, the image it replaced under the same tag, and a blob nobody references."""

    async def push() -> dict[str, str]:
        app = create_app(load_config(str(config), {}))
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
                pusher = Pusher(http)
                old = await pusher.image("app", "v1", layers=[b"base", b"old"], seed="old")
                new = await pusher.image("app", "v1", layers=[b"base", b"new"], seed="new")
                orphan = await pusher.blob("app", b"orphan")
                return {"old": old.digest, "new": new.digest, "orphan": orphan}
        finally:
            await app.aclose()

    return asyncio.run(push())


def test_dry_run_prints_what_would_go_and_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    pushed = populate(config)
    tree = Tree(tmp_path / "data")
    before = tree.snapshot()

    status = main(["garbage-collect", "--dry-run", "--delete-untagged", "-v", str(config)])

    out, err = capsys.readouterr()
    assert status == 0
    assert tree.snapshot() == before
    assert f"manifest eligible for deletion: app@{pushed['old']}" in out
    assert f"blob eligible for deletion: {pushed['orphan']}" in out
    assert "would remove: 1 manifest, 4 blobs (" in out
    # Not a terminal: plain progress lines, one per phase at least.
    assert "marking repositories (1)" in err
    assert "removing blobs: done, 4" in err


def test_collect_removes_and_reports_what_was_freed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    pushed = populate(config)
    tree = Tree(tmp_path / "data")

    assert main(["garbage-collect", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 0 manifests, 1 blob (6 bytes), 1 layer link" in out
    assert not tree.blob(pushed["orphan"]).exists()

    assert main(["garbage-collect", "-m", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 1 manifest, 3 blobs" in out
    assert not tree.revision("app", pushed["old"]).exists()
    assert tree.revision("app", pushed["new"]).exists()
    assert tree.blob(sha256(b"base")).exists()


def test_online_keeps_what_is_younger_than_the_grace_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, grace="1h", deleteuntagged=True)
    pushed = populate(config)
    tree = Tree(tmp_path / "data")

    assert main(["garbage-collect", "--online", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 0 manifests, 0 blobs (0 bytes)" in out
    assert "kept 1 unreferenced blob (6 bytes) younger than the grace period (1h)" in out

    tree.age(2 * 3600)
    assert main(["garbage-collect", "--online", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 1 manifest, 4 blobs" in out  # deleteuntagged from storage.gc
    assert not tree.blob(pushed["orphan"]).exists()

    populate(config)
    assert main(["garbage-collect", "--online", "--grace", "0s", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 1 manifest, 4 blobs" in out


def test_a_second_collection_is_refused_while_one_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)

    async def hold() -> int:
        lease = await FileCoordination(str(tmp_path / "gc")).acquire()
        assert lease is not None
        try:
            return await asyncio.to_thread(main, ["garbage-collect", str(config)])
        finally:
            await lease.finish()

    assert asyncio.run(hold()) == 1
    assert "another garbage collection is running" in capsys.readouterr().err
    # A dry run takes no lease.
    assert main(["garbage-collect", "--dry-run", str(config)]) == 0


@pytest.mark.parametrize(
    ("storage", "extra", "message"),
    [
        ({"inmemory": {}}, {}, "in-memory storage cannot be collected"),
        (None, {"redis": {"addr": "nowhere"}}, "redis.addr: must be host:port"),
        (None, {"storage": {"filesystem": {}, "gc": {"grace": "soon"}}}, "storage.gc.grace"),
    ],
)
def test_configuration_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    storage: dict[str, object] | None,
    extra: dict[str, object],
    message: str,
) -> None:
    document: dict[str, object] = {"version": "0.1", "storage": storage or {"filesystem": {}}}
    document.update(extra)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))

    assert main(["garbage-collect", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_missing_configuration_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["garbage-collect", str(tmp_path / "absent.yml")]) == 2
    assert "cannot read configuration" in capsys.readouterr().err


def test_interval_collects_again_and_again(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "WHARF_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "wharf", "garbage-collect", "--interval", "100ms", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        summaries = 0
        while summaries < 3:
            line = process.stdout.readline()
            assert line, "the collector stopped"
            summaries += line.startswith("removed: ")
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    terminal = _Terminal()
    progress = progress_for(terminal)
    assert isinstance(progress, TerminalProgress)
    progress.phase("marking repositories", 4)
    for _ in range(4):
        progress.advance()
    progress.done()
    drawn = terminal.getvalue()
    assert drawn.startswith("\r\x1b[Kmarking repositories [")
    assert drawn.endswith("] 100% 4/4\n")

    plain = io.StringIO()
    lines = progress_for(plain)
    assert isinstance(lines, LineProgress)
    lines.phase("removing blobs", 100)
    lines.advance(50)
    lines.done()
    assert plain.getvalue().splitlines() == [
        "removing blobs (100)",
        "removing blobs: 50/100",
        "removing blobs: done, 50",
    ]
