"""A check beside writers: vanishing paths, writes caught between two steps, announcements,
and bounded, streamed hashing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from tests.registry.check.support import (
    Damage,
    digest,
    found,
    index_link,
    layer_link,
    referrer_entry,
    repo,
)
from tests.registry.gc.support import Pusher, sha256
from wharf.api.app import WharfApp
from wharf.reference import Tag
from wharf.registry.check import Kind, check_storage
from wharf.registry.check.blobs import HASH_CHUNK
from wharf.storage import paths
from wharf.storage.driver import DriverError, FileReader, Listings, PathNotFound
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.inmemory import InMemoryDriver

pytestmark = pytest.mark.asyncio

Hook = Callable[[str], Awaitable[None]]
T = TypeVar("T")


class Hooked(CheckedDriver):
    """The app's storage, with a hook run before the check reads a path."""

    def __init__(self, app: WharfApp) -> None:
        super().__init__(app.registry.driver.inner)  # type: ignore[attr-defined]
        self.before_read: dict[str, Hook] = {}
        self.after_missing: dict[str, Hook] = {}
        #: Writes the ``after_missing`` hooks started, finishing while the check goes on.
        self.writes: list[asyncio.Future[None]] = []
        self.readers = 0
        self.most_readers = 0
        self.largest_read = 0

    async def _hook(self, path: str) -> None:
        hook = self.before_read.pop(path, None)
        if hook is not None:
            await hook(path)

    async def get_content(self, path: str) -> bytes:
        await self._hook(path)
        return await super().get_content(path)

    async def stat(self, path: str) -> object:  # type: ignore[override]
        await self._hook(path)
        try:
            return await super().stat(path)
        except PathNotFound:
            hook = self.after_missing.pop(path, None)
            if hook is not None:
                self.writes.append(asyncio.ensure_future(hook(path)))
            raise

    async def reader(self, path: str, offset: int = 0) -> FileReader:
        await self._hook(path)
        inner = await super().reader(path, offset)
        driver = self

        class Counting(FileReader):
            async def read(self, size: int) -> bytes:
                driver.largest_read = max(driver.largest_read, size)
                await asyncio.sleep(0.001)
                return await inner.read(size)

            async def close(self) -> None:
                driver.readers -= 1
                await inner.close()

        self.readers += 1
        self.most_readers = max(self.most_readers, self.readers)
        return Counting()


@pytest.mark.parametrize("driver_name", ["inmemory"])
async def test_what_vanishes_mid_walk_is_no_problem(
    app: WharfApp, pusher: Pusher, driver_name: str
) -> None:
    image = await pusher.image("app", "v1", layers=[b"base layer", b"app layer"])
    orphan = await pusher.blob("app", b"uploaded, never referenced")
    driver = Hooked(app)

    async def collected(path: str) -> None:
        # As a collection removes it: the blob, then its links.
        await driver.delete(paths.blob_dir(digest(orphan)))
        await driver.delete(layer_link("app", orphan).removesuffix("/link"))

    async def untagged(path: str) -> None:
        await driver.delete(paths.tag_dir(repo("app"), Tag("v1")))

    driver.before_read[paths.blob_data(digest(orphan))] = collected
    driver.before_read[paths.tag_current_link(repo("app"), Tag("v1"))] = untagged

    report = await check_storage(driver, recheck_delay=0)

    assert report.clean, [p.line() for p in report.problems]
    assert not driver.before_read, "both hooks ran"
    assert report.stats.blobs == len(image.all_blobs) + 1  # the orphan counted, not hashed


@pytest.mark.parametrize("driver_name", ["inmemory"])
async def test_a_write_caught_between_two_steps_is_not_reported(
    app: WharfApp, pusher: Pusher, driver_name: str
) -> None:
    image = await pusher.image("app", "v1", layers=[b"base layer"])
    signature = await pusher.image(
        "app", None, layers=[b"signature"], subject=image, artifact_type="x/sig"
    )
    driver = Hooked(app)
    damage = Damage(driver)
    # As a tag is written (its current link, then its index entry), and as a push indexes a
    # referrer (after its revision link): each caught before its second step.
    index = index_link("app", "v1", image.digest)
    entry = referrer_entry("app", image.digest, signature.digest)
    descriptor = await driver.get_content(entry)
    await damage.delete(index.removesuffix("/link"))
    await damage.delete(entry.removesuffix("/descriptor"))

    async def tagged(path: str) -> None:
        await driver.put_content(index, image.digest.encode())

    async def indexed(path: str) -> None:
        await driver.put_content(entry, descriptor)

    driver.after_missing[index] = tagged
    driver.after_missing[entry] = indexed

    report = await check_storage(driver, recheck_delay=0.05)

    assert report.clean, [p.line() for p in report.problems]
    assert not driver.after_missing, "both writes were caught half way"
    await asyncio.gather(*driver.writes)


async def test_repairs_are_announced_to_the_caches(
    pusher: Pusher, damage: Damage, app: WharfApp
) -> None:
    await pusher.image("app", "v1", layers=[b"base layer"])
    await pusher.image("other", "v1", layers=[b"other layer"])
    orphan = await pusher.blob("other", b"uploaded, never referenced")
    await damage.flip(orphan)
    await damage.write(paths.tag_current_link(repo("app"), Tag("v2")), sha256(b"nothing").encode())
    changed: list[str] = []
    everything: list[None] = []

    async def check(repair: bool) -> None:
        await check_storage(
            app.registry.driver,
            repair=repair,
            recheck_delay=0,
            on_change=changed.append,
            on_change_everything=lambda: everything.append(None),
        )

    await check(repair=False)
    assert changed == [], "a check that changes nothing announces nothing"
    assert everything == []

    await check(repair=True)
    assert sorted(changed) == ["app", "other"]  # the tag; the corrupt blob's link
    assert everything == [None]  # the corrupt blob


@pytest.mark.parametrize("driver_name", ["inmemory"])
async def test_hashing_is_bounded_and_streamed(app: WharfApp, driver_name: str) -> None:
    driver = Hooked(app)
    for index in range(12):
        data = os.urandom(HASH_CHUNK + 1000) + bytes([index])
        await driver.put_content(paths.blob_data(digest(sha256(data))), data)
    submitted = 0

    class Counting(ThreadPoolExecutor):
        def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
            nonlocal submitted
            submitted += 1
            return super().submit(fn, *args, **kwargs)

    with Counting(max_workers=2) as executor:
        report = await check_storage(driver, concurrency=3, executor=executor, recheck_delay=0)
        assert executor.submit(lambda: 1).result() == 1, "the caller's executor stays open"

    assert report.clean
    assert report.stats.blobs == 12
    assert report.stats.bytes_hashed == 12 * (HASH_CHUNK + 1001)
    assert driver.most_readers == 3
    assert driver.largest_read == HASH_CHUNK
    assert submitted >= 12, "whole chunks are hashed in the executor"


class Failing(InMemoryDriver):
    async def list_many(self, directories: list[str]) -> Listings:  # type: ignore[override]
        raise DriverError("storage away")


async def test_a_storage_error_ends_the_check() -> None:
    driver = Failing()
    await driver.put_content(paths.blob_data(digest(sha256(b"x"))), b"x")
    await driver.put_content(layer_link("app", sha256(b"x")), sha256(b"x").encode())

    with pytest.raises(DriverError, match="storage away"):
        await check_storage(driver, recheck_delay=0)


async def test_a_misplaced_blob_is_found_beside_the_right_one(damage: Damage) -> None:
    # Data whose prefix directory is wrong never hides the blob at its place.
    blob = sha256(b"both places")
    await damage.write(paths.blob_data(digest(blob)), b"both places")
    stray = f"{paths.blobs_dir()}/sha256/00/{digest(blob).hex}/data"
    await damage.write(stray, b"both places")

    report = await check_storage(damage.driver, recheck_delay=0)

    assert found(report) == {(Kind.BLOB_MISPLACED, stray)}
    assert report.stats.blobs == 1
