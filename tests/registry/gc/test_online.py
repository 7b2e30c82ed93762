"""Online collection against a real ``wharf serve`` (two workers) while a client pushes,
re-tags and deletes tags: nothing pushed and still tagged may be lost.

Two collectors loop at once, on flock coordination or on a real Redis, and the grace period
is a fraction of a second, so that collections really remove images whose tags went and
blobs nobody referenced while pushes go on, and so that a push reusing such a blob races its
removal. A push that loses that race is refused (MANIFEST_BLOB_UNKNOWN) and pushed again, as
clients do; it must never be accepted with a blob missing.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.gc.support import Pushed, Pusher, PushError
from tests.support.server import WharfServer
from wharf.config import StorageConfig
from wharf.config.load import load_config
from wharf.registry.gc import CollectorBusy, Coordination, FileCoordination, GcOptions, collect
from wharf.registry.gc.coordination import CollectorLease, Presence, Role
from wharf.registry.gc.guard import redis_client
from wharf.registry.gc.redis_coordination import RedisCoordination
from wharf.storage.driver.factory import create_driver

pytestmark = [pytest.mark.server, pytest.mark.asyncio]

PUSHES = 20
GRACE = timedelta(seconds=0.3)


@dataclass
class Leases:
    """When each collector held the lease, as (start, end, collector)."""

    spans: list[tuple[float, float, str]] = field(default_factory=list)

    def overlapping(self) -> list[tuple[Any, Any]]:
        ordered = sorted(self.spans)
        return [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]


class _RecordedLease(CollectorLease):
    def __init__(self, inner: CollectorLease, record: Leases, name: str) -> None:
        self.inner, self.record, self.name = inner, record, name
        self.started = time.monotonic()

    async def start_epoch(self) -> int:
        self.epoch = await self.inner.start_epoch()
        return self.epoch

    async def drain_writers(self, within: float) -> None:
        await self.inner.drain_writers(within)

    async def claim(self, digests: Sequence[str]) -> set[str]:
        return await self.inner.claim(digests)

    async def unclaim(self, digests: Sequence[str]) -> None:
        await self.inner.unclaim(digests)

    def check(self) -> None:
        self.inner.check()

    async def announce(self) -> None:
        await self.inner.announce()

    async def finish(self) -> None:
        # Recorded before the release: a successor cannot start before this moment.
        self.record.spans.append((self.started, time.monotonic(), self.name))
        await self.inner.finish()


class Recorded(Coordination):
    def __init__(self, inner: Coordination, record: Leases, name: str) -> None:
        self.inner, self.record, self.name = inner, record, name

    async def start_write(self, digests: Any) -> Any:
        return await self.inner.start_write(digests)

    async def end_write(self, ticket: Any) -> None:
        await self.inner.end_write(ticket)

    async def acquire(self) -> CollectorLease | None:
        lease = await self.inner.acquire()
        return None if lease is None else _RecordedLease(lease, self.record, self.name)

    async def hold(self, role: Role) -> Presence:
        return await self.inner.hold(role)

    async def present(self, role: Role) -> bool:
        return await self.inner.present(role)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Collectors:
    runs: int = 0
    busy: int = 0
    manifests_removed: int = 0
    blobs_removed: int = 0
    errors: list[str] = field(default_factory=list)


@pytest.fixture(params=["file", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WharfServer]:
    config: dict[str, Any] = {"storage": {"gc": {"lockdir": str(tmp_path / "gc")}}}
    if backend == "redis":
        config["redis"] = {"addr": request.getfixturevalue("redis_addr")}
    with WharfServer(workers=2, config=config) as started:
        yield started


def coordination_for(backend: str, server: WharfServer, tmp_path: Path) -> Coordination:
    if backend == "redis":
        settings = load_config(str(server.config_path), {}).redis
        assert settings is not None
        return RedisCoordination(redis_client(settings))
    return FileCoordination(str(tmp_path / "gc"))


@pytest.fixture
async def client(server: WharfServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


def layer(name: str) -> bytes:
    return f"online layer {name} ".encode() * 200


async def push(pusher: Pusher, tag: str, layers: list[bytes], seed: str) -> tuple[Pushed, int]:
    """Push as a client does; a push refused because a blob it skipped was swept meanwhile is
    pushed again with every blob uploaded. Returns the image and the number of retries."""
    for attempt in range(5):
        try:
            image = await pusher.image("online", tag, layers=layers, seed=seed, check=attempt == 0)
        except PushError as error:
            if "MANIFEST_BLOB_UNKNOWN" not in error.codes:
                raise
            continue
        return image, attempt
    raise AssertionError(f"{tag}: refused five times")


async def retag(pusher: Pusher, image: Pushed, tag: str) -> None:
    response = await pusher.client.put(
        f"/v2/online/manifests/{tag}",
        content=image.body,
        headers={"Content-Type": image.media_type},
    )
    assert response.status_code == 201, response.text


async def collect_forever(
    server: WharfServer, coordination: Coordination, stop: asyncio.Event, stats: Collectors
) -> None:
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(server.root)}))
    options = GcOptions(delete_untagged=True, grace=GRACE, drain_timeout=30)
    try:
        while not stop.is_set():
            try:
                result = await collect(driver, coordination, options)
            except CollectorBusy:
                stats.busy += 1
                await asyncio.sleep(0.01)
                continue
            stats.runs += 1
            stats.manifests_removed += len(result.sweep.manifests_removed)
            stats.blobs_removed += len(result.sweep.blobs_removed)
            stats.errors += result.sweep.errors
            await asyncio.sleep(0.02)
    finally:
        await driver.close()
        await coordination.close()


async def test_collectors_looping_during_pushes_lose_nothing(
    backend: str, server: WharfServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    pusher = Pusher(client)
    leases = Leases()
    stats = Collectors()
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(
            collect_forever(
                server,
                Recorded(coordination_for(backend, server, tmp_path), leases, name),
                stop,
                stats,
            )
        )
        for name in ("first", "second")
    ]
    tagged: dict[str, Pushed] = {}
    retries = 0
    try:
        for i in range(PUSHES):
            # Every image shares a base layer; each also reuses the layer of an image three
            # pushes back, whose tag may be gone and whose layer may be being swept.
            layers = [layer("base"), layer(f"own {i}")]
            if i >= 3:
                layers.append(layer(f"own {i - 3}"))
            image, retried = await push(pusher, f"v{i}", layers, f"seed {i}")
            retries += retried
            tagged[f"v{i}"] = image
            await retag(pusher, image, "latest")
            tagged["latest"] = image
            if i % 3 == 0:
                await retag(pusher, image, "stable")
                tagged["stable"] = image
            if i % 2 == 1:
                await pusher.delete_tag("online", f"v{i - 1}")
                del tagged[f"v{i - 1}"]
            await pusher.blob("online", f"abandoned {i}".encode(), check=False)
            await asyncio.sleep(0.12)
        # Let the last untagged images and abandoned blobs age past the grace period.
        await asyncio.sleep(2 * GRACE.total_seconds() + 0.2)
    finally:
        stop.set()
        await asyncio.gather(*loops)

    assert stats.errors == []
    assert stats.runs >= 3, stats
    assert stats.manifests_removed > 0, stats
    assert stats.blobs_removed > 0, stats
    assert leases.overlapping() == [], "two collections held the lease at once"
    assert {name for _, _, name in leases.spans} == {"first", "second"}
    for tag, image in tagged.items():
        await pusher.pulls(image, tag)

    # One more collection, offline now: everything still tagged is complete, and no image
    # whose tag was deleted is left.
    final = Recorded(coordination_for(backend, server, tmp_path), leases, "final")
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(server.root)}))
    try:
        result = await collect(driver, final, GcOptions(delete_untagged=True))
    finally:
        await driver.close()
        await final.close()
    assert result.sweep.manifests_removed == []
    for tag, image in tagged.items():
        await pusher.pulls(image, tag)
    assert "Traceback" not in server.log()
    print(f"{backend}: {stats}, {retries} pushes retried")
