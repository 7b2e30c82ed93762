"""A process continues an upload session from what its last request there left, and only
while no other worker has written to the session since."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import AppFactory
from tests.api.helpers import error_codes, push_blob, sha256
from tests.support.urls import with_query
from wharf.api.app import WharfApp
from wharf.registry.purge import purge_uploads
from wharf.storage.driver.checked import CheckedDriver

pytestmark = pytest.mark.asyncio

#: Driver operations that read what storage holds for a session.
_LOOKUPS = {"stat", "list", "get_content", "writer", "reader"}


def _client(app: WharfApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wharf")


def _record(app: WharfApp) -> list[str]:
    driver = app.registry.driver
    assert isinstance(driver, CheckedDriver)
    operations: list[str] = []
    driver.observe = lambda _driver, operation, _seconds, _failed: operations.append(operation)
    return operations


async def _start(client: httpx.AsyncClient, name: str) -> str:
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


async def test_a_session_continues_from_memory(make_app: AppFactory) -> None:
    """After the first PATCH, the next ones and the PUT read nothing of the session from
    storage, and the blob is whole."""
    app = make_app()
    operations = _record(app)
    data = os.urandom(2_100_000)
    pieces = [(0, 700_000), (700_000, 1_400_000)]
    async with _client(app) as client:
        # A repository with content: its first link (which enters it in the catalog index,
        # reading the index once) is not the one measured.
        small = b"small"
        first_blob = await client.post(
            "/v2/memory/blobs/uploads/", params={"digest": sha256(small)}, content=small
        )
        assert first_blob.status_code == 201, first_blob.text
        location = await _start(client, "memory")
        for number, (first, end) in enumerate(pieces):
            operations.clear()
            response = await client.patch(
                location,
                content=data[first:end],
                headers={"Content-Range": f"{first}-{end - 1}"},
            )
            assert response.status_code == 202, response.text
            location = response.headers["Location"]
            if number:
                assert "resume_writer" in operations
                assert not _LOOKUPS & set(operations), operations
        status = await client.get(location)  # reads storage: another may have written
        assert status.headers["Range"] == "0-1399999"
        operations.clear()
        done = await client.put(with_query(location, digest=sha256(data)), content=data[1_400_000:])
        assert done.status_code == 201, done.text
        assert "resume_writer" in operations
        assert not {"list", "get_content", "writer"} & set(operations), operations
        assert (await client.get(f"/v2/memory/blobs/{sha256(data)}")).content == data


async def test_another_workers_write_is_never_continued_from_memory(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCHes without a Content-Range, going back and forth between two workers of one
    instance: each continues from what storage holds, not from what it last left."""
    workers = [make_app(), make_app()]
    if workers[0].config.storage.driver == "inmemory":
        pytest.skip("each in-memory app has storage of its own")
    clients = [_client(app) for app in workers]
    data = os.urandom(2_000_000)
    try:
        location = await _start(clients[0], "shared")
        for number, first in enumerate(range(0, 1_600_000, 400_000)):
            response = await clients[number % 2].patch(
                location, content=data[first : first + 400_000]
            )
            assert response.status_code == 202, response.text
            assert response.headers["Range"] == f"0-{first + 400_000 - 1}"
            location = response.headers["Location"]
        done = await clients[0].put(
            with_query(location, digest=sha256(data)), content=data[1_600_000:]
        )
        assert done.status_code == 201, done.text
        pulled = await clients[1].get(f"/v2/shared/blobs/{sha256(data)}")
        assert pulled.content == data
    finally:
        for client in clients:
            await client.aclose()


async def test_a_purged_session_is_not_continued_from_memory(make_app: AppFactory) -> None:
    app = make_app()
    async with _client(app) as client:
        await push_blob(client, "purged", b"makes the repository one the catalog lists")
        location = await _start(client, "purged")
        response = await client.patch(location, content=b"kept for a while")
        assert response.status_code == 202, response.text
        # Everything started before a minute from now: this session.
        result = await purge_uploads(
            app.registry.driver, app.registry.catalog, timedelta(minutes=-1)
        )
        assert len(result.purged) >= 1
        again = await client.patch(location, content=b"too late")
        assert again.status_code == 404, again.text
        assert error_codes(again) == ["BLOB_UPLOAD_UNKNOWN"]
        status = await client.get(location)
        assert error_codes(status) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_a_cancelled_session_is_forgotten(make_app: AppFactory) -> None:
    app = make_app()
    async with _client(app) as client:
        location = await _start(client, "cancelled")
        assert (await client.patch(location, content=b"abc")).status_code == 202
        assert (await client.delete(location)).status_code == 204
        again = await client.patch(location, content=b"def")
        assert error_codes(again) == ["BLOB_UPLOAD_UNKNOWN"]


@pytest.mark.parametrize("alternate", [False, True], ids=["one-worker", "two-workers"])
async def test_stored_bytes_are_hashed_again_only_when_they_may_be_anothers(
    make_app: AppFactory, alternate: bool
) -> None:
    """Where leases exclude only this machine's processes (an S3 store without atomic
    conditional writes), a session another process wrote to is hashed again from storage at
    completion; one received whole by one process, or on storage whose leases exclude every
    machine, is not."""
    workers = [make_app(), make_app()] if alternate else [make_app()]
    if alternate and workers[0].config.storage.driver == "inmemory":
        pytest.skip("each in-memory app has storage of its own")
    operations = _record(workers[-1])
    clients = [_client(app) for app in workers]
    data = os.urandom(1_500_000)
    try:
        location = await _start(clients[0], "rehash")
        response = await clients[0].patch(location, content=data[:1_000_000])
        assert response.status_code == 202, response.text
        operations.clear()
        done = await clients[-1].put(
            with_query(response.headers["Location"], digest=sha256(data)),
            content=data[1_000_000:],
        )
        assert done.status_code == 201, done.text
        reread = "reader" in operations
        assert reread == (alternate and not workers[0].registry.driver.exclusive_leases)
        assert (await clients[0].get(f"/v2/rehash/blobs/{sha256(data)}")).content == data
    finally:
        for client in clients:
            await client.aclose()
