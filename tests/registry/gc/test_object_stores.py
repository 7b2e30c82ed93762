"""Collections on object stores, where the mark reads every repository from one listing of
the tree and resolves tags from the MD5s the listing gives: on S3 (moto, Swift's s3api),
Swift's native API, GCS (fake-gcs-server) and Azure (Azurite). What is kept and removed is
the same as on the filesystem; a tag link whose content is not exactly a digest (a trailing
newline, garbage) is read, not guessed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.registry.gc.support import Pusher
from tests.support.s3servers import S3Server
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.gc import GcOptions, GcResult, collect, create_coordination
from wharf.storage import paths
from wharf.storage.driver import StorageDriver
from wharf.storage.driver.middleware.base import Middleware


class _CountingReads(Middleware):
    """The real driver, counting the links it is asked to read."""

    def __init__(self, inner: StorageDriver) -> None:
        super().__init__(inner)
        self.tag_links_read: list[str] = []

    async def get_content(self, path: str) -> bytes:
        if path.endswith("/current/link"):
            self.tag_links_read.append(path)
        return await super().get_content(path)

    async def get_many(self, paths: Sequence[str]) -> list[bytes | None]:
        self.tag_links_read += [path for path in paths if path.endswith("/current/link")]
        return await super().get_many(paths)


@pytest.fixture(
    params=[
        pytest.param("moto", marks=pytest.mark.s3),
        pytest.param("swift-s3api", marks=pytest.mark.s3),
        pytest.param("swift", marks=pytest.mark.swift),
        pytest.param("gcs", marks=pytest.mark.gcs),
        pytest.param("azure", marks=pytest.mark.azure),
    ]
)
def store(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A driver's name and parameters on fresh storage of one of the servers."""
    kind = str(request.param)
    if kind in ("moto", "swift-s3api"):
        server: S3Server = request.getfixturevalue(f"{kind.partition('-')[0]}_server")
        return "s3", server.fresh_parameters()
    fixture = {"swift": "swift_native", "gcs": "gcs_server", "azure": "azurite_server"}[kind]
    return kind, request.getfixturevalue(fixture).fresh_parameters()


@pytest.fixture
async def app(store: tuple[str, dict[str, Any]]) -> AsyncIterator[WharfApp]:
    driver, parameters = store
    config = Config(
        storage=StorageConfig(driver, parameters, delete_enabled=True, redirect_disabled=True),
        http=HTTPConfig(secret="test-secret"),
    )
    application = create_app(config)
    yield application
    await application.aclose()


@pytest.fixture
async def pusher(app: WharfApp) -> AsyncIterator[Pusher]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
        yield Pusher(client)


async def _collect(app: WharfApp, driver: StorageDriver, **options: Any) -> GcResult:
    coordination = create_coordination(app.config)
    try:
        return await collect(
            driver, coordination, GcOptions(**options), generations=app.generations
        )
    finally:
        await coordination.close()


async def test_untagged_collection_resolves_tags_from_the_listing(
    app: WharfApp, pusher: Pusher
) -> None:
    kept = await pusher.image("shop/web", "v1", layers=[b"kept layer" * 50], seed="kept")
    moved_from = await pusher.image("shop/web", "v2", layers=[b"old layer" * 50], seed="old")
    moved_to = await pusher.image("shop/web", "v2", layers=[b"new layer" * 50], seed="new")
    other = await pusher.image("shop/api", "latest", layers=[b"api layer" * 50], seed="api")
    orphan = await pusher.blob("shop/api", b"pushed, never referenced")
    counting = _CountingReads(app.registry.driver)

    result = await _collect(app, counting, delete_untagged=True, offline=True)

    assert counting.tag_links_read == []  # every tag confirmed by its link's ETag
    assert result.sweep.manifests_removed == [f"shop/web@{moved_from.digest}"]
    removed = {str(d) for d in result.sweep.blobs_removed}
    assert removed == {orphan, moved_from.digest, *moved_from.blobs} - set(moved_to.blobs)
    for image, tag in ((kept, "v1"), (moved_to, "v2"), (other, "latest")):
        await pusher.pulls(image, tag)


async def test_tag_links_unlike_wharfs_own_are_read(app: WharfApp, pusher: Pusher) -> None:
    """A link ending in a newline (as a hand-edited tree or another tool may write it) is
    read, and its image kept; a link that names no digest makes its repository uncertain,
    so nothing is removed from it."""
    driver = app.registry.driver
    newline = await pusher.image("dist/app", None, layers=[b"newline layer" * 50], seed="nl")
    untagged = await pusher.image("dist/app", None, layers=[b"untagged layer" * 50], seed="u")
    await driver.put_content(
        paths.tag_current_link(RepositoryName("dist/app"), Tag("written-elsewhere")),
        newline.digest.encode() + b"\n",
    )
    guarded = await pusher.image("odd/app", None, layers=[b"odd layer" * 50], seed="odd")
    await driver.put_content(
        paths.tag_current_link(RepositoryName("odd/app"), Tag("broken")), b"not a digest"
    )
    counting = _CountingReads(driver)

    result = await _collect(app, counting, delete_untagged=True, offline=True)

    assert sorted(counting.tag_links_read) == sorted(
        [
            paths.tag_current_link(RepositoryName("dist/app"), Tag("written-elsewhere")),
            paths.tag_current_link(RepositoryName("odd/app"), Tag("broken")),
        ]
    )
    assert result.sweep.manifests_removed == [f"dist/app@{untagged.digest}"]
    assert any("odd/app: tag broken: not a link" in u for u in result.mark.uncertain)
    await pusher.pulls(newline, "written-elsewhere")
    await pusher.pulls(guarded)


async def test_an_idle_session_keeps_the_blob_it_would_become(
    app: WharfApp, pusher: Pusher
) -> None:
    """Sessions come from a listing of their own while a registry serves: an idle chunked
    upload whose bytes equal an unreferenced blob keeps that blob; the session then
    completes to it."""
    client = pusher.client
    data = b"chunk of an upload in progress" * 100
    orphan = await pusher.blob("up/app", data)
    started = await client.post("/v2/up/app/blobs/uploads/")
    assert started.status_code == 202
    patched = await client.patch(
        started.headers["Location"],
        content=data,
        headers={"Content-Range": f"0-{len(data) - 1}", "Content-Type": "application/octet-stream"},
    )
    assert patched.status_code == 202, patched.text
    loose = await pusher.blob("up/app", b"nothing keeps this one")
    await asyncio.sleep(1.1)  # older than the cutoff, also where a store rounds times up

    result = await _collect(app, app.registry.driver, grace=timedelta(0))

    assert {str(d) for d in result.sweep.blobs_removed} == {loose}
    assert Digest.parse(orphan) in result.mark.pending.digests
    location = patched.headers["Location"]
    separator = "&" if "?" in location else "?"
    done = await client.put(f"{location}{separator}digest={orphan}")
    assert done.status_code == 201, done.text
    pulled = await client.get(f"/v2/up/app/blobs/{orphan}")
    assert pulled.content == data
