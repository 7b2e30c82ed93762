"""The GCS driver: the contract on fake-gcs-server, and what only GCS has."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.storage.driver.contract import DriverContract, random_bytes
from tests.storage.driver.contract_support import read_all
from tests.support.faultproxy import FaultProxy, gcs_operation
from tests.support.gcs import GCSServer, service_account
from wharf.config.model import StorageConfig
from wharf.storage.driver import DriverError, LeaseBusy, PathNotFound, StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver
from wharf.storage.driver.gcs import lease as gcs_lease
from wharf.storage.driver.gcs import parse_parameters
from wharf.storage.driver.gcs.client import RetryPolicy, sign_url
from wharf.storage.driver.gcs.driver import GCSDriver
from wharf.storage.driver.gcs.params import ServiceAccount

pytestmark = pytest.mark.gcs

MiB = 1 << 20
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def driver(gcs_server: GCSServer) -> AsyncIterator[StorageDriver]:
    # A fresh bucket per test, below a root directory.
    driver = create_driver(StorageConfig("gcs", gcs_server.fresh_parameters()))
    yield driver
    await driver.close()


class TestGCSContract(DriverContract):
    walk_etags = True
    mtime_resolution = 0.01  # updated has microseconds


def make_driver(gcs: GCSServer, bucket: str, **options: Any) -> CheckedDriver:
    knobs = {name: options.pop(name) for name in ("chunk_size", "page_size") if name in options}
    params = parse_parameters(gcs.parameters(bucket, **options))
    return CheckedDriver(GCSDriver(params, retry=FAST_RETRY, **knobs))


@pytest.fixture
def bucket(gcs_server: GCSServer) -> str:
    return gcs_server.create_bucket()


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


# -- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "bucket is required"),
        ({"bucket": "b", "region": "x"}, "unknown parameter 'region'"),
        ({"bucket": "b", "chunksize": 1000}, "chunksize must be a positive multiple of 262144"),
        ({"bucket": "b", "chunksize": "abc"}, "chunksize must be an integer"),
        ({"bucket": "b", "maxconcurrency": 3}, "maxconcurrency must be at least 25"),
        ({"bucket": "b", "keyfile": "/nonexistent/key.json"}, "keyfile cannot be read"),
        ({"bucket": "b", "credentials": "x"}, "credentials must hold a service account"),
        ({"bucket": "b", "credentials": {"client_email": "a"}}, "credentials lacks private_key"),
        (
            {"bucket": "b", "credentials": {"client_email": "a", "private_key": "x"}},
            "no PEM private key",
        ),
    ],
)
def test_bad_parameters_are_one_line(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        parse_parameters(parameters)
    assert "\n" not in str(exc.value)
    assert "PRIVATE KEY" not in str(exc.value)
    with pytest.raises(ValueError, match=message):
        create_driver(StorageConfig("gcs", parameters))


def test_distribution_parameters_are_accepted(tmp_path: Any) -> None:
    import json

    keyfile = tmp_path / "key.json"
    keyfile.write_text(json.dumps(service_account()))
    params = parse_parameters(
        {
            "bucket": "registry",
            "keyfile": str(keyfile),
            "rootdirectory": "/a/b/",
            "chunksize": str(5 * 256 << 10),
            "maxconcurrency": 60,
            "useragent": "me",
        },
        environ={},
    )
    assert (params.bucket, params.rootdirectory, params.chunksize) == ("registry", "a/b", 5 << 18)
    assert params.account is not None
    assert params.account.email.startswith("wharf@")
    assert (params.endpoint, params.emulated) == ("https://storage.googleapis.com", False)
    emulated = parse_parameters({"bucket": "b"}, environ={"STORAGE_EMULATOR_HOST": "h:1"})
    assert (emulated.endpoint, emulated.emulated, emulated.account) == ("http://h:1", True, None)


# -- layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "prefix"), [("", ""), ("/", ""), ("/registry/", "registry/"), ("a/b", "a/b/")]
)
async def test_object_names_follow_distribution(
    gcs_server: GCSServer, bucket: str, root: str, prefix: str
) -> None:
    driver = make_driver(gcs_server, bucket, rootdirectory=root)
    link = "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link"
    await driver.put_content(link, b"sha256:abc")
    assert gcs_server.names(bucket) == [prefix + link[1:]]
    # What Distribution wrote is read as is.
    gcs_server.upload(bucket, prefix + "docker/x", b"from go")
    assert await driver.get_content("/docker/x") == b"from go"
    await driver.close()


# -- writers --------------------------------------------------------------------------------


async def test_a_file_continues_on_another_instance(gcs_server: GCSServer, bucket: str) -> None:
    """Each chunk on a new driver (another process or machine): storage alone carries it."""
    path = "/uploads/u1/data"
    pieces = [random_bytes(n) for n in (MiB + 5, 3, 2 * MiB, 0, 700_000)]
    for piece in pieces:
        driver = make_driver(gcs_server, bucket, chunk_size=256 << 10)
        try:
            writer = await driver.writer(path, append=piece is not pieces[0])
            assert writer.size == sum(len(p) for p in pieces[: pieces.index(piece)])
            await writer.write(piece)
            await writer.close()
        finally:
            await driver.close()
    assert not [n for n in gcs_server.names(bucket) if not n.startswith(path[1:] + "#part.")]
    driver = make_driver(gcs_server, bucket)
    writer = await driver.writer(path, append=True)
    await writer.commit()
    assert await driver.get_content(path) == b"".join(pieces)
    assert gcs_server.names(bucket) == [path[1:]]  # the parts went
    await driver.close()


async def test_many_parts_compose_through_intermediates(gcs_server: GCSServer, bucket: str) -> None:
    driver = make_driver(gcs_server, bucket, chunk_size=256 << 10)
    data = random_bytes(70 * (256 << 10) + 3)  # 71 parts: three composes, then one
    writer = await driver.writer("/big")
    await writer.write(data)
    await writer.commit()
    assert await driver.get_content("/big") == data
    assert gcs_server.names(bucket) == ["big"]
    await driver.close()


async def test_a_dead_writers_parts_stay_off_the_chain(gcs_server: GCSServer, bucket: str) -> None:
    driver = make_driver(gcs_server, bucket)
    writer = await driver.writer("/f")
    await writer.write(b"a" * 10)
    await writer.close()
    # A part beyond a hole, as a writer killed mid-upload leaves it.
    gcs_server.upload(bucket, "f#part.0000000000000001.00000000000000000020", b"zz")
    again = await driver.writer("/f", append=True)
    assert again.size == 10
    await again.write(b"b" * 5)
    await again.commit()
    assert await driver.get_content("/f") == b"a" * 10 + b"b" * 5
    # The leftover is older than the committed file: no later writer continues it.
    dead = "f#part.0000000000000001.00000000000000000020"
    assert gcs_server.names(bucket) == ["f", dead]
    writer = await driver.writer("/f", append=True)
    assert writer.size == 15
    await writer.cancel()  # leaves the committed file
    assert await driver.get_content("/f") == b"a" * 10 + b"b" * 5
    # Purging takes the leftovers; the committed file stays.
    await driver.purge_uncommitted(datetime.now(UTC) + timedelta(seconds=1))
    assert gcs_server.names(bucket) == ["f"]
    await driver.close()


async def test_purge_deletes_stale_parts_only(gcs_server: GCSServer, bucket: str) -> None:
    driver = make_driver(gcs_server, bucket, rootdirectory="/r")
    writer = await driver.writer("/d/_uploads/x/data")
    await writer.write(b"old")
    await writer.close()
    await driver.put_content("/d/file", b"kept")
    assert await driver.purge_uncommitted(datetime.now(UTC) - timedelta(hours=1)) == []
    purged = await driver.purge_uncommitted(datetime.now(UTC) + timedelta(seconds=1), dry_run=True)
    assert purged == ["/d/_uploads/x/data"]
    assert len(gcs_server.names(bucket)) == 2
    await driver.purge_uncommitted(datetime.now(UTC) + timedelta(seconds=1))
    assert gcs_server.names(bucket) == ["r/d/file"]
    with pytest.raises(PathNotFound):
        await driver.writer("/d/_uploads/x/data", append=True)
    await driver.close()


async def test_deleting_an_upload_directory_takes_parts_and_lease(
    gcs_server: GCSServer, bucket: str
) -> None:
    driver = make_driver(gcs_server, bucket)
    writer = await driver.writer("/_uploads/u/data")
    await writer.write(b"bytes")
    await writer.close()
    await driver.put_content("/_uploads/u/startedat", b"now")
    lease = await driver.lease("/_uploads/u/startedat")
    await driver.delete("/_uploads/u")
    await lease.release(deleted=True)
    assert gcs_server.names(bucket) == []
    await driver.close()


# -- leases ---------------------------------------------------------------------------------


async def test_an_expired_lease_is_taken_over(
    gcs_server: GCSServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs_lease.SETTINGS, "ttl", 1.0)
    monkeypatch.setattr(gcs_lease.SETTINGS, "renew", 100.0)  # the holder hangs
    monkeypatch.setattr(gcs_lease.SETTINGS, "margin", 0.2)
    driver = make_driver(gcs_server, bucket)
    await driver.put_content("/f", b"x")
    first = await driver.lease("/f")
    with pytest.raises(LeaseBusy):
        await driver.lease("/f")
    await asyncio.sleep(2.1)  # the storage's Date has whole seconds
    second = await driver.lease("/f")
    assert second.turn == 2
    from wharf.storage.driver import LeaseLost

    with pytest.raises(LeaseLost):
        first.check()
    await first.release()  # lost: writes nothing
    with pytest.raises(LeaseBusy):
        await driver.lease("/f")
    await second.release()
    await driver.close()


async def test_a_held_lease_is_renewed(
    gcs_server: GCSServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs_lease.SETTINGS, "ttl", 1.0)
    monkeypatch.setattr(gcs_lease.SETTINGS, "renew", 0.2)
    monkeypatch.setattr(gcs_lease.SETTINGS, "margin", 0.2)
    driver = make_driver(gcs_server, bucket)
    await driver.put_content("/f", b"x")
    async with await driver.lease("/f") as held:
        await asyncio.sleep(1.5)
        held.check()
        with pytest.raises(LeaseBusy):
            await driver.lease("/f")
    await driver.close()


# -- redirects ------------------------------------------------------------------------------


def test_signed_urls_match_google_cloud_storage() -> None:
    from google.cloud.storage._signing import generate_signed_url_v4
    from google.oauth2 import service_account as accounts

    info = service_account()
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for method in ("GET", "HEAD"):
        ours = sign_url(
            ServiceAccount(info), "https://storage.googleapis.com", "bkt",
            "docker/registry/v2/blobs/sha256/ab/ab~c/data", method, now, timedelta(minutes=20),
        )  # fmt: skip
        theirs = generate_signed_url_v4(
            accounts.Credentials.from_service_account_info(info),
            "/bkt/docker/registry/v2/blobs/sha256/ab/ab~c/data",
            expiration=timedelta(minutes=20),
            method=method,
            _request_timestamp=now.strftime("%Y%m%dT%H%M%SZ"),
            api_access_endpoint="https://storage.googleapis.com",
        )
        assert ours == theirs


async def test_redirects_are_signed_urls_the_store_serves(
    gcs_server: GCSServer, bucket: str
) -> None:
    driver = make_driver(gcs_server, bucket, rootdirectory="/r")
    data = random_bytes(1000)
    await driver.put_content("/blob/data", data)
    url = await driver.redirect_url("/blob/data")
    assert url is not None
    assert url.startswith(f"{gcs_server.endpoint}/{bucket}/r/blob/data?")
    assert "X-Goog-Signature=" in url
    assert await asyncio.to_thread(fetch, url) == (200, data)
    head = await driver.redirect_url("/blob/data", "HEAD")
    assert head is not None
    assert (await asyncio.to_thread(fetch, head, "HEAD"))[0] == 200
    assert await driver.redirect_url("/blob/data", "PUT") is None
    await driver.close()
    unsigned = CheckedDriver(GCSDriver(parse_parameters({"bucket": bucket}), retry=FAST_RETRY))
    assert await unsigned.redirect_url("/blob/data") is None  # no key: served by wharf
    await unsigned.close()


# -- errors ---------------------------------------------------------------------------------


async def test_a_missing_bucket_is_a_driver_error(gcs_server: GCSServer) -> None:
    driver = make_driver(gcs_server, "no-such-bucket-here")
    with pytest.raises(PathNotFound):
        await driver.get_content("/x")
    for call in (driver.put_content("/x", b"1"), driver.list("/")):
        with pytest.raises(DriverError, match="bucket not found") as exc:
            await call
        assert not isinstance(exc.value, PathNotFound)
    await driver.close()


async def test_an_unreachable_store_is_a_driver_error() -> None:
    from tests.support.server import free_port

    params = parse_parameters(
        {"bucket": "b"}, environ={"STORAGE_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    )
    driver = CheckedDriver(GCSDriver(params, retry=FAST_RETRY))
    with pytest.raises(DriverError, match="GCS request failed"):
        await driver.stat("/x")
    await driver.close()


# -- faults ---------------------------------------------------------------------------------


@pytest.fixture
def proxy(gcs_server: GCSServer) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_server.endpoint, classify=gcs_operation) as proxy:
        yield proxy


@pytest.fixture
async def proxied(bucket: str, proxy: FaultProxy) -> AsyncIterator[CheckedDriver]:
    """A driver with 1 MiB parts talking through ``proxy``."""
    params = parse_parameters({"bucket": bucket}, environ={"STORAGE_EMULATOR_HOST": proxy.endpoint})
    driver = CheckedDriver(GCSDriver(params, retry=FAST_RETRY, chunk_size=MiB))
    yield driver
    await driver.close()


async def test_transient_errors_are_retried(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(3 * MiB + 5)
    proxy.fail("InsertObject", "status", status=500)  # the small file
    proxy.fail("InsertObject", "status", status=503, after=1)  # a part
    proxy.fail("GetObject", "cut")  # continued where it broke
    proxy.fail("ListObjects", "drop")
    proxy.fail("GetObjectMetadata", "status", status=503, times=2)
    proxy.fail("ComposeObject", "lose")
    proxy.fail("InsertObjectMultipart", "lose")  # a lease taken, its answer lost
    await proxied.put_content("/small", b"small")
    writer = await proxied.writer("/big")
    await writer.write(data)
    await writer.commit()
    assert await read_all(proxied, "/big") == data
    assert await proxied.list("/") == ["/big", "/small"]
    assert (await proxied.stat("/small")).size == 5
    lease = await proxied.lease("/small")
    assert lease.turn == 1
    with pytest.raises(LeaseBusy):
        await proxied.lease("/small")
    await lease.release()
    assert all(fault.times == 0 for fault in proxy.faults)


@pytest.mark.parametrize("failing", ["InsertObject", "ComposeObject"])
async def test_persistent_failures_leave_a_resumable_prefix(
    gcs_server: GCSServer, bucket: str, proxy: FaultProxy, proxied: StorageDriver, failing: str
) -> None:
    data = random_bytes(5 * MiB + 5)
    writer = await proxied.writer("/u/data")
    await writer.write(data[: 2 * MiB])
    await writer.close()
    proxy.fail(failing, "status", status=500, times=1000)
    writer = await proxied.writer("/u/data", append=True)

    async def send() -> None:
        await writer.write(data[2 * MiB :])
        await (writer.commit() if failing == "ComposeObject" else writer.close())

    with pytest.raises(DriverError) as exc:
        await send()
    assert exc.value.driver == "gcs"
    await writer.close()
    assert "u/data" not in gcs_server.names(bucket)  # never visible before a commit
    proxy.clear()
    writer = await proxied.writer("/u/data", append=True)
    size = writer.size
    assert 2 * MiB <= size <= len(data)
    await writer.write(data[size:])
    await writer.commit()
    assert await proxied.get_content("/u/data") == data


async def test_distributions_upload_in_progress_is_no_file(
    gcs_server: GCSServer, bucket: str
) -> None:
    """Distribution keeps an upload's tail at the file's name, typed as an upload session."""
    with gcs_server.client() as client:
        client.post(
            f"/upload/storage/v1/b/{bucket}/o",
            params={"uploadType": "media", "name": "u/data"},
            content=b"tail",
            headers={"Content-Type": "application/x-docker-upload-session"},
        ).raise_for_status()
    driver = make_driver(gcs_server, bucket)
    await driver.put_content("/u/startedat", b"now")
    for call in (driver.stat, driver.get_content, driver.reader):
        with pytest.raises(PathNotFound):
            await call("/u/data")  # type: ignore[operator]
    with pytest.raises(PathNotFound):
        await driver.writer("/u/data", append=True)
    assert await driver.list("/u") == ["/u/startedat"]
    assert [info.path async for info in driver.walk("/u")] == ["/u/startedat"]
    await driver.delete("/u")
    assert gcs_server.names(bucket) == []
    await driver.close()


# -- the registry on GCS: purging and garbage collection ------------------------------------


async def test_purging_takes_old_sessions_parts_along(gcs_server: GCSServer, bucket: str) -> None:
    from wharf.coherence.caches import RegistryCache
    from wharf.coherence.generations import Generations
    from wharf.reference import Digest, RepositoryName
    from wharf.registry.catalog import Catalog
    from wharf.registry.purge import purge_uploads
    from wharf.registry.upload_session import format_started_at
    from wharf.storage import paths

    driver = make_driver(gcs_server, bucket, chunk_size=256 << 10)
    name = RepositoryName("purge/me")
    zero = Digest("sha256", "0" * 64)
    await driver.put_content(paths.layer_link(name, zero), paths.link_content(zero))
    now = datetime.now(UTC)
    for upload_id, started in (("old", now - timedelta(days=8)), ("new", now)):
        await driver.put_content(
            paths.upload_started_at(name, upload_id), format_started_at(started)
        )
        writer = await driver.writer(paths.upload_data(name, upload_id))
        await writer.write(random_bytes(600_000))  # three parts, none committed
        await writer.close()
    catalog = Catalog(driver, RegistryCache(Generations()))
    result = await purge_uploads(driver, catalog, timedelta(days=7))
    assert result.purged == ["purge/me/old"]
    names = gcs_server.names(bucket)
    assert not [n for n in names if "/_uploads/old/" in n]
    assert len([n for n in names if "/_uploads/new/data#part." in n]) == 3
    await driver.close()


async def test_garbage_collection_sweeps_an_orphan_blob(gcs_server: GCSServer) -> None:
    import httpx

    from tests.registry.gc.support import Pusher
    from wharf.api.app import create_app
    from wharf.config import Config, HTTPConfig
    from wharf.registry.gc import GcOptions, collect, create_coordination

    parameters = gcs_server.fresh_parameters()
    config = Config(
        storage=StorageConfig("gcs", parameters, delete_enabled=True, redirect_disabled=True),
        http=HTTPConfig(secret="test-secret"),
    )
    app = create_app(config)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
            pusher = Pusher(client)
            image = await pusher.image("app", "v1", layers=[b"layer a" * 100, b"layer b" * 100])
            orphan = await pusher.blob("app", b"uploaded, never referenced")
            coordination = create_coordination(app.config)
            try:
                result = await collect(
                    app.registry.driver, coordination, GcOptions(), generations=app.generations
                )
            finally:
                await coordination.close()
            await pusher.pulls(image, "v1")
    finally:
        await app.aclose()
    assert [str(d) for d in result.sweep.blobs_removed] == [orphan]
    hexes = "/".join(gcs_server.names(parameters["bucket"]))
    assert orphan.split(":")[1] not in hexes


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ("bucket: b\n    keyfile: /nonexistent/key.json", "keyfile cannot be read"),
        ("bucket: b\n    region: x", "unknown parameter 'region'"),
    ],
)
def test_serve_stops_at_a_bad_parameter_with_one_line(
    tmp_path: Any, parameters: str, message: str
) -> None:
    """Checked in the parent process before workers start; exit status 2."""
    import subprocess
    import sys

    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  gcs:\n    {parameters}\n")
    result = subprocess.run(
        [sys.executable, "-m", "wharf", "serve", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wharf: error: ")
    assert message in lines[0]
