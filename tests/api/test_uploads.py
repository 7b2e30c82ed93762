from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.api.conftest import AppFactory
from tests.api.helpers import error_codes, push_blob, sha256
from tests.support.faultproxy import FaultProxy
from tests.support.s3servers import S3Server
from tests.support.urls import with_query
from wharf.api.app import WharfApp
from wharf.reference import Digest
from wharf.storage import paths
from wharf.storage.driver import PathNotFound
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.s3.layout import KeyLayout

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

pytestmark = pytest.mark.asyncio

MiB = 1 << 20


async def _start(client: httpx.AsyncClient, name: str) -> httpx.Response:
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response


async def test_open_session_headers(client: httpx.AsyncClient) -> None:
    response = await _start(client, "up")
    assert response.headers["Range"] == "0-0"
    upload_id = response.headers["Docker-Upload-UUID"]
    assert f"/v2/up/blobs/uploads/{upload_id}" in response.headers["Location"]
    assert response.headers["Content-Length"] == "0"


async def test_monolithic_put(client: httpx.AsyncClient) -> None:
    data = os.urandom(100_000)
    location = (await _start(client, "mono")).headers["Location"]
    response = await client.put(with_query(location, digest=sha256(data)), content=data)
    assert response.status_code == 201, response.text
    assert response.headers["Location"].endswith(f"/v2/mono/blobs/{sha256(data)}")
    assert response.headers["Docker-Content-Digest"] == sha256(data)
    assert (await client.get(f"/v2/mono/blobs/{sha256(data)}")).content == data


async def test_chunked_upload_with_status(client: httpx.AsyncClient) -> None:
    data = os.urandom(3_000_000)
    chunks = [data[:1_000_000], data[1_000_000:2_500_000], data[2_500_000:]]
    location = (await _start(client, "chunky")).headers["Location"]
    offset = 0
    for chunk in chunks[:-1]:
        response = await client.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
        status = await client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
    response = await client.put(
        with_query(location, digest=sha256(data)),
        content=chunks[-1],
        headers={"Content-Range": f"{offset}-{len(data) - 1}"},
    )
    assert response.status_code == 201, response.text
    assert (await client.get(f"/v2/chunky/blobs/{sha256(data)}")).content == data


async def test_streamed_patch_without_content_range(client: httpx.AsyncClient) -> None:
    data = os.urandom(2_500_000)

    async def body() -> object:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    location = (await _start(client, "stream")).headers["Location"]
    response = await client.patch(location, content=body())  # type: ignore[arg-type]
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(data) - 1}"
    done = await client.put(with_query(response.headers["Location"], digest=sha256(data)))
    assert done.status_code == 201
    assert (await client.get(f"/v2/stream/blobs/{sha256(data)}")).content == data


async def test_out_of_order_chunk_is_416(client: httpx.AsyncClient) -> None:
    location = (await _start(client, "order")).headers["Location"]
    first = await client.patch(location, content=b"a" * 10, headers={"Content-Range": "0-9"})
    assert first.status_code == 202
    skipped = await client.patch(
        first.headers["Location"], content=b"b" * 10, headers={"Content-Range": "20-29"}
    )
    assert skipped.status_code == 416
    assert error_codes(skipped) == ["RANGE_INVALID"]
    replayed = await client.patch(
        first.headers["Location"], content=b"a" * 10, headers={"Content-Range": "0-9"}
    )
    assert replayed.status_code == 416
    status = await client.get(first.headers["Location"])
    assert status.headers["Range"] == "0-9"


async def test_content_range_must_match_length(client: httpx.AsyncClient) -> None:
    location = (await _start(client, "mismatch")).headers["Location"]
    response = await client.patch(location, content=b"x" * 10, headers={"Content-Range": "0-19"})
    assert response.status_code in (400, 416)


async def test_digest_mismatch_is_digest_invalid_and_ends_session(
    client: httpx.AsyncClient,
) -> None:
    location = (await _start(client, "bad")).headers["Location"]
    response = await client.put(with_query(location, digest=sha256(b"other")), content=b"actual")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert (await client.get(f"/v2/bad/blobs/{sha256(b'other')}")).status_code == 404
    assert (await client.get(location)).status_code == 404


async def test_missing_digest_on_completion(client: httpx.AsyncClient) -> None:
    location = (await _start(client, "nodigest")).headers["Location"]
    response = await client.put(location, content=b"data")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


async def test_cancel_upload(client: httpx.AsyncClient) -> None:
    location = (await _start(client, "cancel")).headers["Location"]
    await client.patch(location, content=b"partial")
    response = await client.delete(location)
    assert response.status_code == 204
    gone = await client.get(location)
    assert gone.status_code == 404
    assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]
    assert (await client.delete(location)).status_code == 404


async def test_unknown_and_malformed_sessions(client: httpx.AsyncClient) -> None:
    for upload_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "%2e%2e"):
        response = await client.get(f"/v2/repo/blobs/uploads/{upload_id}")
        assert response.status_code == 404, upload_id
        assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]


async def test_tampered_state_is_refused(client: httpx.AsyncClient) -> None:
    upload_id = (await _start(client, "state")).headers["Docker-Upload-UUID"]
    response = await client.get(f"/v2/state/blobs/uploads/{upload_id}?_state=forged")
    assert response.status_code == 400
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]


async def test_cross_repository_mount(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "source/repo", b"shared layer")
    response = await client.post(
        "/v2/target/repo/blobs/uploads/", params={"mount": digest, "from": "source/repo"}
    )
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/v2/target/repo/blobs/{digest}")
    assert (await client.get(f"/v2/target/repo/blobs/{digest}")).content == b"shared layer"


async def test_mount_of_unknown_blob_opens_session(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/target/blobs/uploads/", params={"mount": sha256(b"nowhere"), "from": "source"}
    )
    assert response.status_code == 202
    assert "Docker-Upload-UUID" in response.headers


async def test_automatic_mount_without_from(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "elsewhere", b"known somewhere")
    response = await client.post("/v2/auto/blobs/uploads/", params={"mount": digest})
    assert response.status_code == 201
    assert (await client.get(f"/v2/auto/blobs/{digest}")).status_code == 200


async def test_zero_byte_blob(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "empty", b"")
    response = await client.get(f"/v2/empty/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"


async def test_pushing_existing_blob_again(client: httpx.AsyncClient) -> None:
    data = b"twice" * 1000
    await push_blob(client, "again", data)
    await push_blob(client, "again", data)
    await push_blob(client, "again2", data)
    assert (await client.get(f"/v2/again2/blobs/{sha256(data)}")).content == data


async def test_session_survives_restart(make_app: AppFactory) -> None:
    first = make_app()
    if first.config.storage.driver == "inmemory":
        pytest.skip("in-memory data does not outlive its app")
    data = os.urandom(2_000_000)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=first), base_url="http://w"
    ) as c:
        location = (await _start(c, "restart")).headers["Location"]
        response = await c.patch(location, content=data[:1_200_000])
        assert response.status_code == 202
    await first.aclose()
    second = make_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second), base_url="http://w"
    ) as c:
        status = await c.get(location)
        assert status.headers["Range"] == f"0-{1_200_000 - 1}"
        response = await c.patch(
            location,
            content=data[1_200_000:],
            headers={"Content-Range": f"1200000-{len(data) - 1}"},
        )
        assert response.status_code == 202
        done = await c.put(with_query(response.headers["Location"], digest=sha256(data)))
        assert done.status_code == 201, done.text
        assert (await c.get(f"/v2/restart/blobs/{sha256(data)}")).content == data


async def test_resume_without_saved_hash_state(make_app: AppFactory) -> None:
    """A request that died before its hash state was saved is caught up from the data."""
    app = make_app()
    data = os.urandom(1_500_000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        start = await _start(c, "catchup")
        upload_id = start.headers["Docker-Upload-UUID"]
        location = (await c.patch(start.headers["Location"], content=data[:700_000])).headers[
            "Location"
        ]
        from wharf.reference import RepositoryName
        from wharf.storage import paths

        states = paths.upload_hash_states_dir(RepositoryName("catchup"), upload_id, "sha256")
        await app.registry.driver.delete(states)
        response = await c.patch(location, content=data[700_000:])
        assert response.status_code == 202
        done = await c.put(with_query(response.headers["Location"], digest=sha256(data)))
        assert done.status_code == 201, done.text


async def _hash_state_offsets(app: WharfApp, name: str, upload_id: str) -> list[int]:
    from wharf.reference import RepositoryName

    states = paths.upload_hash_states_dir(RepositoryName(name), upload_id, "sha256")
    try:
        listed = await app.registry.driver.list(states)
    except PathNotFound:
        return []
    return sorted(int(p.rpartition("/")[2]) for p in listed)


async def test_each_patch_saves_its_hash_state(make_app: AppFactory) -> None:
    """Each request saves the state at the size it leaves; the session's end removes them."""
    app = make_app()
    data = os.urandom(900_000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        start = await _start(c, "states")
        upload_id, location = start.headers["Docker-Upload-UUID"], start.headers["Location"]
        ends: list[int] = []
        for first, end in ((0, 300_000), (300_000, 650_000), (650_000, 900_000)):
            response = await c.patch(location, content=data[first:end])
            assert response.status_code == 202, response.text
            location = response.headers["Location"]
            ends.append(end)
            assert await _hash_state_offsets(app, "states", upload_id) == ends
        done = await c.put(with_query(location, digest=sha256(data)))
        assert done.status_code == 201, done.text
        assert await _hash_state_offsets(app, "states", upload_id) == []


async def test_a_completed_session_is_removed_only_after_its_link(
    app: WharfApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection must see a completing upload as its session or as its link (safety
    rule 4 of ``wharf.registry.gc.safety``): on a store slow to write the link, the session's
    directory still waits for it."""
    driver = app.registry.driver
    events: list[str] = []
    put_content, delete = driver.put_content, driver.delete

    async def slow_link(path: str, content: bytes) -> None:
        if "/_layers/" in path:
            await asyncio.sleep(0.3)
            events.append("link written")
        await put_content(path, content)

    async def recorded_delete(path: str) -> None:
        if path.endswith(f"/_uploads/{upload_id}"):
            events.append("session removed")
        await delete(path)

    monkeypatch.setattr(driver, "put_content", slow_link)
    monkeypatch.setattr(driver, "delete", recorded_delete)
    data = os.urandom(50_000)
    start = await _start(client, "ordered")
    upload_id = start.headers["Docker-Upload-UUID"]
    patched = await client.patch(start.headers["Location"], content=data)
    assert patched.status_code == 202, patched.text
    done = await client.put(with_query(patched.headers["Location"], digest=sha256(data)))
    assert done.status_code == 201, done.text
    assert events == ["link written", "session removed"]


@pytest.mark.parametrize("with_range", [False, True], ids=["streamed", "content-range"])
async def test_resume_from_an_older_hash_state(make_app: AppFactory, with_range: bool) -> None:
    """Without a state at the session's size, the newest older one is caught up from the
    data where the driver can read it, and completion hashes the whole blob where not. With
    a Content-Range, the state at its start is looked for first, and its absence is no
    different."""
    from wharf.reference import RepositoryName

    app = make_app()
    data = os.urandom(1_600_000)
    repository = RepositoryName("older")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        start = await _start(c, "older")
        upload_id, location = start.headers["Docker-Upload-UUID"], start.headers["Location"]
        location = (await c.patch(location, content=data[:500_000])).headers["Location"]
        first_state = paths.upload_hash_state(repository, upload_id, "sha256", 500_000)
        saved = await app.registry.driver.get_content(first_state)
        response = await c.patch(location, content=data[500_000:1_100_000])
        location = response.headers["Location"]
        driver = app.registry.driver
        await driver.delete(paths.upload_hash_state(repository, upload_id, "sha256", 1_100_000))
        await driver.put_content(first_state, saved)
        headers = {"Content-Range": f"1100000-{len(data) - 1}"} if with_range else {}
        response = await c.patch(location, content=data[1_100_000:], headers=headers)
        assert response.status_code == 202, response.text
        done = await c.put(with_query(response.headers["Location"], digest=sha256(data)))
        assert done.status_code == 201, done.text
        assert (await c.get(f"/v2/older/blobs/{sha256(data)}")).content == data


async def test_a_patch_whose_bytes_are_not_stored_leaves_no_hash_state(
    make_app: AppFactory, driver_name: str, storage_parameters: dict[str, Any]
) -> None:
    """The state is saved while the last bytes are stored; if they are not, it goes: a later
    request at that size must not find a state of bytes that storage does not hold."""
    if not driver_name.startswith("s3-"):
        pytest.skip("faults are injected between wharf and an S3 server")
    server = storage_parameters["regionendpoint"]
    first, lost, second = os.urandom(6 * MiB), os.urandom(6 * MiB), os.urandom(6 * MiB)
    with FaultProxy(server) as proxy:
        storage_parameters["regionendpoint"] = proxy.endpoint
        app = make_app()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as c:
            start = await _start(c, "lost")
            upload_id, location = start.headers["Docker-Upload-UUID"], start.headers["Location"]
            location = (await c.patch(location, content=first)).headers["Location"]
            proxy.fail("UploadPart", "drop", times=100)
            response = await c.patch(
                location,
                content=lost,
                headers={"Content-Range": f"{len(first)}-{2 * len(first) - 1}"},
            )
            assert response.status_code >= 500, response.text
            proxy.clear()
            states = await _hash_state_offsets(app, "lost", upload_id)
            assert states == [len(first)]
            status = await c.get(location)
            assert status.headers["Range"] == f"0-{len(first) - 1}"
            response = await c.patch(location, content=second)
            assert response.status_code == 202, response.text
            done = await c.put(
                with_query(response.headers["Location"], digest=sha256(first + second))
            )
            assert done.status_code == 201, done.text
            blob = await c.get(f"/v2/lost/blobs/{sha256(first + second)}")
            assert blob.content == first + second


async def test_patch_to_unknown_session_stores_nothing(make_app: AppFactory) -> None:
    from wharf.reference import RepositoryName

    app = make_app()
    upload_id = "00000000-0000-4000-8000-000000000000"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        await push_blob(c, "ghost", b"the repository exists")
        response = await c.patch(f"/v2/ghost/blobs/uploads/{upload_id}", content=b"lost bytes")
        assert response.status_code == 404
        assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]
        status = await c.get(f"/v2/ghost/blobs/uploads/{upload_id}")
        assert error_codes(status) == ["BLOB_UPLOAD_UNKNOWN"]
    with pytest.raises(PathNotFound):
        await app.registry.driver.stat(paths.upload_dir(RepositoryName("ghost"), upload_id))


# -- a digest known before the body: written in place on S3 --------------------------------------


@dataclass
class S3Storage:
    """What the bucket under an app holds, seen through a plain S3 client."""

    client: S3Client
    bucket: str
    layout: KeyLayout

    def blob_key(self, digest: str) -> str:
        return self.layout.key(paths.blob_data(Digest.parse(digest)))

    def objects(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.layout.prefix
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def uploads(self) -> list[str]:
        """Keys with a multipart upload in progress."""
        response = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.layout.prefix)
        return [upload["Key"] for upload in response.get("Uploads", [])]

    def session_data(self) -> list[str]:
        return [key for key in self.objects() + self.uploads() if "/_uploads/" in key]


def _small_parts(driver_name: str, storage_parameters: dict[str, Any]) -> None:
    """5 MiB parts on S3, so that a few MiB make a multipart upload."""
    if driver_name.startswith("s3-"):
        storage_parameters["chunksize"] = 5 * MiB


@pytest.fixture
def s3_storage(
    driver_name: str, storage_parameters: dict[str, Any], request: pytest.FixtureRequest
) -> S3Storage:
    if not driver_name.startswith("s3-"):
        pytest.skip("writing in place is for S3 storage")
    _small_parts(driver_name, storage_parameters)
    server: S3Server = request.getfixturevalue(driver_name.replace("s3-", "") + "_server")
    layout = KeyLayout(storage_parameters.get("rootdirectory", ""))
    return S3Storage(server.client(), storage_parameters["bucket"], layout)


def _record_moves(app: WharfApp) -> list[str]:
    """The driver's ``move`` calls from now on (the storage metrics' hook)."""
    driver = app.registry.driver
    assert isinstance(driver, CheckedDriver)
    moves: list[str] = []
    observe = driver.observe

    def record(name: str, operation: str, seconds: float, failed: bool) -> None:
        if operation == "move":
            moves.append(operation)
        if observe is not None:
            observe(name, operation, seconds, failed)

    driver.observe = record
    return moves


async def _push(
    client: httpx.AsyncClient, name: str, how: str, digest: str, body: Any
) -> httpx.Response:
    """A whole blob in one request: ``monolithic`` (POST, then PUT with the body) or ``post``
    (POST with the digest and the body)."""
    if how == "post":
        return await client.post(
            f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=body
        )
    location = (await _start(client, name)).headers["Location"]
    return await client.put(with_query(location, digest=digest), content=body)


@pytest.mark.parametrize("how", ["monolithic", "post"])
async def test_digest_known_up_front_is_written_in_place(
    s3_storage: S3Storage, make_app: AppFactory, how: str
) -> None:
    app = make_app()
    moves = _record_moves(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        for data in (os.urandom(12 * MiB), os.urandom(1000)):  # in parts, and in one PUT
            response = await _push(c, "inplace", how, sha256(data), data)
            assert response.status_code == 201, response.text
            assert (await c.get(f"/v2/inplace/blobs/{sha256(data)}")).content == data
            assert s3_storage.blob_key(sha256(data)) in s3_storage.objects()
    assert moves == []  # no copy of the data, nothing left of the sessions
    assert s3_storage.session_data() == []
    assert s3_storage.uploads() == []


@pytest.mark.parametrize("how", ["monolithic", "post"])
async def test_digest_mismatch_in_place_leaves_nothing(
    s3_storage: S3Storage, make_app: AppFactory, how: str
) -> None:
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        for data in (os.urandom(12 * MiB), os.urandom(1000)):
            claimed = sha256(b"something else " + data[:10])
            response = await _push(c, "liar", how, claimed, data)
            assert response.status_code == 400
            assert error_codes(response) == ["DIGEST_INVALID"]
            assert (await c.head(f"/v2/liar/blobs/{claimed}")).status_code == 404
            assert s3_storage.blob_key(claimed) not in s3_storage.objects()
            assert s3_storage.blob_key(sha256(data)) not in s3_storage.objects()
    assert s3_storage.uploads() == []
    assert s3_storage.session_data() == []


async def test_concurrent_pushes_of_one_blob(
    make_app: AppFactory, driver_name: str, storage_parameters: dict[str, Any]
) -> None:
    """Two clients push the same blob at once, the second starting when the first is half
    done, then both finishing together: both succeed."""
    _small_parts(driver_name, storage_parameters)
    app = make_app()
    data = os.urandom(24 * MiB)
    half = len(data) // 2
    halfway = [asyncio.Event(), asyncio.Event()]

    async def body(me: int) -> AsyncIterator[bytes]:
        if me:
            await halfway[0].wait()
        for start in range(0, len(data), MiB):
            if start == half:
                halfway[me].set()
                await halfway[1 - me].wait()
            yield data[start : start + MiB]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
        async with asyncio.timeout(120):
            responses = await asyncio.gather(
                *(_push(c, "same", "monolithic", sha256(data), body(me)) for me in (0, 1))
            )
        for response in responses:
            assert response.status_code == 201, response.text
        assert (await c.get(f"/v2/same/blobs/{sha256(data)}")).content == data
