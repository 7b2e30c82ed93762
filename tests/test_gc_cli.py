"""``wharf garbage-collect``: what it prints, what it removes, and how it fails."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.registry.gc.support import Pusher, Tree, sha256
from tests.support.redis_server import RedisServer, needs_redis
from tests.support.server import WharfServer
from wharf.api.app import create_app
from wharf.cli import main
from wharf.config.load import CONFIG_PATH_ENV, load_config
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


def test_offline_removes_garbage_dated_ahead_of_its_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No registry serves an offline run: a store clock ahead of this one's (or Swift's
    Last-Modified, rounded up) keeps nothing; an explicit --grace keeps what is recent."""
    config = write_config(tmp_path)
    pushed = populate(config)
    tree = Tree(tmp_path / "data")
    tree.age(-5)

    assert main(["garbage-collect", "--grace", "0s", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 0 manifests, 0 blobs (0 bytes)" in out
    assert main(["garbage-collect", str(config)]) == 0
    out, _ = capsys.readouterr()
    assert "removed: 0 manifests, 1 blob (6 bytes), 1 layer link" in out
    assert not tree.blob(pushed["orphan"]).exists()


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


def test_the_configuration_is_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The built-in defaults would collect ./wharf-data of whatever directory this runs in.
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["garbage-collect"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "wharf garbage-collect: error: the registry's config.yml is required "
        f"(as an argument or in ${CONFIG_PATH_ENV})"
    ]
    assert not (tmp_path / "wharf-data").exists()

    monkeypatch.setenv(CONFIG_PATH_ENV, str(write_config(tmp_path)))
    assert main(["garbage-collect", "--dry-run"]) == 0


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "WHARF_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def collector(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``python -m wharf garbage-collect [OPTIONS] CONFIG`` in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "wharf", "garbage-collect", *options, str(config)],
        capture_output=True,
        env=_environment(),
        text=True,
        timeout=120,
    )


REFUSED = (
    "wharf: a registry is serving this storage: collect beside it with --online, "
    "or stop it first (--force collects offline all the same)"
)


def push_orphan(server: WharfServer, data: bytes) -> str:
    digest = sha256(data)
    response = httpx.post(
        f"{server.url}/v2/app/blobs/uploads/", params={"digest": digest}, content=data
    )
    assert response.status_code == 201
    return digest


def refused(config: Path) -> bool:
    run = collector(config)
    if run.returncode == 0:
        return False
    assert run.returncode == 1
    assert run.stderr.splitlines() == [REFUSED]
    return True


@pytest.mark.server
def test_offline_collection_refuses_beside_a_serving_registry() -> None:
    with WharfServer(workers=2) as server:  # the default lockdir, as in production
        config, tree = server.config_path, Tree(server.root)
        orphan = push_orphan(server, b"pushed, its manifest still to come")

        assert refused(config)
        assert tree.blob(orphan).exists()

        run = collector(config, "--dry-run", "-v")
        assert run.returncode == 0, run.stderr
        assert f"blob eligible for deletion: {orphan}" in run.stdout
        assert "a registry serves this storage" in run.stderr
        run = collector(config, "--online")
        assert run.returncode == 0, run.stderr
        assert "kept 1 unreferenced blob" in run.stdout
        assert tree.blob(orphan).exists()

        run = collector(config, "--force")
        assert run.returncode == 0, run.stderr
        assert "collecting offline all the same (--force)" in run.stderr
        assert not tree.blob(orphan).exists()

        orphan = push_orphan(server, b"left behind by a stopped registry")
        server.stop()
        run = collector(config)
        assert run.returncode == 0, run.stderr
        assert not tree.blob(orphan).exists()

        server.start()
        orphan = push_orphan(server, b"left behind by a killed registry")
        assert refused(config)
        server.kill()  # a lock dies with its process: no wait
        run = collector(config)
        assert run.returncode == 0, run.stderr
        assert not tree.blob(orphan).exists()


@pytest.mark.server
def test_a_registry_starting_during_an_offline_collection_is_warned(tmp_path: Path) -> None:
    lockdir = tmp_path / "gc"
    marker = FileCoordination(str(lockdir))

    async def start_during_a_collection(server: WharfServer) -> None:
        held = await marker.hold("offline")
        try:
            await asyncio.to_thread(server.start)
            deadline = time.monotonic() + 10
            while "an offline garbage collection of this storage is running" not in server.log():
                assert time.monotonic() < deadline, server.log()
                await asyncio.sleep(0.05)
        finally:
            await held.release()

    server = WharfServer(config={"storage": {"gc": {"lockdir": str(lockdir)}}})
    try:
        asyncio.run(start_during_a_collection(server))
    finally:
        server.cleanup()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


@needs_redis
@pytest.mark.server
@pytest.mark.slow
def test_offline_collection_refuses_beside_registries_sharing_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    storage = {"filesystem": {"rootdirectory": str(tmp_path / "data")}}
    config = {"redis": {"addr": redis_server.addr}}
    tree = Tree(tmp_path / "data")
    with (
        WharfServer(storage=storage, config=config) as first,
        WharfServer(storage=storage, config=config) as second,
    ):
        orphan = push_orphan(first, b"pushed through the first registry")
        assert refused(first.config_path)
        assert tree.blob(orphan).exists()
        run = collector(first.config_path, "--force")
        assert run.returncode == 0, run.stderr
        assert not tree.blob(orphan).exists()

        orphan = push_orphan(second, b"pushed through the second registry")
        first.stop()
        assert refused(first.config_path), "the second registry still serves"
        second.kill()
        killed = time.monotonic()
        # Its presence outlives it by at most its TTL (10s): no heartbeat renews it.
        assert refused(first.config_path)
        while True:
            started = time.monotonic()
            if not refused(first.config_path):
                break
            assert started - killed < 10 + 1, "the presence outlived its TTL"
            time.sleep(0.5)
        assert not tree.blob(orphan).exists()


def test_interval_collects_again_and_again(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "wharf", "garbage-collect", "--interval", "100ms", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_environment(),
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
