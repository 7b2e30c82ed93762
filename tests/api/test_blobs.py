from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.api.conftest import AppFactory
from tests.api.helpers import error_codes, push_blob, sha256
from tests.support.urls import with_query

pytestmark = pytest.mark.asyncio


async def test_get_and_head_blob(client: httpx.AsyncClient) -> None:
    data = os.urandom(3 << 20)
    digest = await push_blob(client, "repo/a", data)
    response = await client.get(f"/v2/repo/a/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["ETag"] == f'"{digest}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    head = await client.head(f"/v2/repo/a/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.content == b""


async def test_blob_not_linked_to_other_repository(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "repo/a", b"private bytes")
    response = await client.get(f"/v2/repo/b/blobs/{digest}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-9", 206, (0, 9)),
        ("bytes=10-", 206, (10, 99)),
        ("bytes=-5", 206, (95, 99)),
        ("bytes=90-200", 206, (90, 99)),
        ("bytes=100-", 416, None),
        ("bytes=50-10", 416, None),
    ],
)
async def test_range_requests(
    client: httpx.AsyncClient, header: str, status: int, expected: tuple[int, int] | None
) -> None:
    data = bytes(range(100))
    digest = await push_blob(client, "ranges", data)
    response = await client.get(f"/v2/ranges/blobs/{digest}", headers={"Range": header})
    assert response.status_code == status
    if expected is None:
        assert response.headers["Content-Range"] == "bytes */100"
        assert error_codes(response) == ["RANGE_INVALID"]
    else:
        start, end = expected
        assert response.content == data[start : end + 1]
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/100"


async def test_invalid_digest_is_digest_invalid(client: httpx.AsyncClient) -> None:
    for reference in ("sha256:short", "md5:abc", "nocolon", "sha256:" + "G" * 64):
        response = await client.get(f"/v2/repo/blobs/{reference}")
        assert response.status_code == 400, reference
        assert error_codes(response) == ["DIGEST_INVALID"]


async def test_delete_blob(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "del", b"to be deleted")
    response = await client.delete(f"/v2/del/blobs/{digest}")
    assert response.status_code == 202
    assert (await client.get(f"/v2/del/blobs/{digest}")).status_code == 404
    again = await client.delete(f"/v2/del/blobs/{digest}")
    assert again.status_code == 404
    assert error_codes(again) == ["BLOB_UNKNOWN"]


async def test_delete_disabled_is_unsupported(make_app: AppFactory) -> None:
    app = make_app(delete_enabled=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        digest = await push_blob(c, "nodelete", b"kept")
        response = await c.delete(f"/v2/nodelete/blobs/{digest}")
        assert response.status_code == 405
        assert error_codes(response) == ["UNSUPPORTED"]
        assert (await c.get(f"/v2/nodelete/blobs/{digest}")).status_code == 200


async def test_read_only_refuses_writes_and_serves_reads(make_app: AppFactory) -> None:
    writable = make_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=writable), base_url="http://w"
    ) as c:
        digest = await push_blob(c, "ro", b"readable")
    if writable.config.storage.driver == "inmemory":
        pytest.skip("in-memory data does not outlive its app")
    read_only = make_app(readonly=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=read_only), base_url="http://w"
    ) as c:
        assert (await c.get(f"/v2/ro/blobs/{digest}")).content == b"readable"
        for method, path in [
            ("POST", "/v2/ro/blobs/uploads/"),
            ("DELETE", f"/v2/ro/blobs/{digest}"),
            ("PUT", "/v2/ro/manifests/latest"),
            ("DELETE", "/v2/ro/manifests/latest"),
        ]:
            response = await c.request(method, path, content=b"{}")
            assert response.status_code == 405, (method, path)
            assert error_codes(response) == ["UNSUPPORTED"]
            assert "read-only" in response.json()["errors"][0]["message"]


async def test_sha512_blob(client: httpx.AsyncClient) -> None:
    data = b"sha512 content" * 1000
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    response = await client.post("/v2/s5/blobs/uploads/", params={"digest": digest}, content=data)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    fetched = await client.get(f"/v2/s5/blobs/{digest}")
    assert fetched.content == data
    # A chunked upload completed with a sha512 digest is verified by re-reading it.
    start = await client.post("/v2/s5/blobs/uploads/")
    location = start.headers["Location"]
    patch = await client.patch(
        location, content=data[:5000], headers={"Content-Type": "application/octet-stream"}
    )
    assert patch.status_code == 202
    done = await client.put(
        with_query(patch.headers["Location"], digest=digest), content=data[5000:]
    )
    assert done.status_code == 201, done.text
    assert sha256(data) != digest
