"""An offline collection and the registries serving its storage, in process: the presence each
serving app holds, and a collection stopped by a registry that starts while it runs."""

from __future__ import annotations

import asyncio
import fcntl
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests.registry.gc.conftest import make_config
from tests.registry.gc.support import Pusher, Tree
from wharf.api.app import WharfApp, create_app
from wharf.registry.gc import GcOptions, collect, create_coordination
from wharf.registry.gc.coordination import OfflineCollection, RegistryServing
from wharf.registry.gc.progress import Progress

pytestmark = pytest.mark.asyncio


async def _present(app: WharfApp) -> bool:
    coordination = create_coordination(app.config)
    try:
        return await coordination.present("serving")
    finally:
        await coordination.close()


async def _until(app: WharfApp, expected: bool) -> None:
    for _ in range(200):
        if await _present(app) == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"serving presence never became {expected}")


async def test_a_started_app_serves_until_it_closes(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tmp_path / "gc"))
    assert not await _present(app), "only a started app serves"
    app.start_background()
    try:
        await _until(app, True)
    finally:
        await app.aclose()
    assert not await _present(app)


async def test_a_read_only_app_does_not_count_as_serving(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tmp_path / "gc")
    app = create_app(replace(config, storage=replace(config.storage, readonly=True)))
    app.start_background()
    try:
        await asyncio.sleep(0.1)
        assert not await _present(app)
    finally:
        await app.aclose()


async def test_an_app_starting_during_an_offline_collection_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_config(tmp_path / "data", tmp_path / "gc"))
    coordination = create_coordination(app.config)
    marker = await coordination.hold("offline")
    app.start_background()
    try:
        for _ in range(200):
            if "an offline garbage collection of this storage is running" in caplog.text:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("no warning")
        assert await _present(app), "it serves all the same"
    finally:
        await app.aclose()
        await marker.release()
        await coordination.close()


class _RegistryStartsBeforeRemoval(Progress):
    """Starts serving (a shared flock, as a registry process holds it) once blobs are listed."""

    def __init__(self, lockdir: Path) -> None:
        super().__init__()
        self.lockdir = lockdir
        self.fd: int | None = None

    def phase(self, name: str, total: int | None = None) -> None:
        super().phase(name, total)
        if name == "removing blobs":
            self.fd = os.open(self.lockdir / "serving.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_SH)


async def test_a_registry_starting_during_an_offline_collection_stops_it(
    tmp_path: Path, pusher: Pusher, tree: Tree, app: WharfApp
) -> None:
    orphan = await pusher.blob("app", b"pushed by the registry that starts")
    progress = _RegistryStartsBeforeRemoval(tmp_path / "gc")
    coordination = OfflineCollection(create_coordination(app.config))
    try:
        with pytest.raises(RegistryServing):
            await collect(app.registry.driver, coordination, GcOptions(), progress=progress)
    finally:
        if progress.fd is not None:
            os.close(progress.fd)
        await coordination.close()
    assert tree.blob(orphan).exists()

    # Without a registry serving, the same collection goes through.
    coordination = OfflineCollection(create_coordination(app.config))
    try:
        result = await collect(app.registry.driver, coordination, GcOptions())
    finally:
        await coordination.close()
    assert [str(d) for d in result.sweep.blobs_removed] == [orphan]
