"""The Swift driver: the contract on OpenStack Swift (native API, tempauth), and what only
Swift has."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.storage.driver.contract import DriverContract, random_bytes
from tests.support.faultproxy import FaultProxy
from tests.support.swift import SwiftNative
from wharf.config.model import StorageConfig
from wharf.config.sources import ConfigError
from wharf.storage.driver import DriverError, PathNotFound, StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver, validate_storage
from wharf.storage.driver.swift.client import RetryPolicy
from wharf.storage.driver.swift.driver import SwiftDriver
from wharf.storage.driver.swift.params import parse_parameters

pytestmark = pytest.mark.swift


@pytest.fixture
async def driver(swift_native: SwiftNative) -> AsyncIterator[StorageDriver]:
    # A fresh container per test. Segments of the default 20 MiB: Swift serves the segments of
    # a DLO past its tenth at one a second (dlo's rate_limit_after_segment).
    parameters = swift_native.fresh_parameters()
    driver = create_driver(StorageConfig("swift", parameters))
    yield driver
    await driver.close()


class TestSwiftContract(DriverContract):
    mtime_resolution = 0.05  # X-Timestamp has microseconds
    walk_etags = True


# -- helpers ------------------------------------------------------------------------------------

MiB = 1 << 20
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def swift_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """``Auth``, ``<METHOD> container`` or ``<METHOD> segment|manifest|object`` (a PUT with
    ``X-Object-Manifest`` is a manifest, objects below ``segments/`` are segments)."""
    if path.startswith("/auth/"):
        return "Auth"
    parts = path.lstrip("/").split("/", 3)  # v1, account, container, object
    if len(parts) < 4 or not parts[3]:
        return f"{method} container"
    if "x-object-manifest" in {key.lower() for key in headers}:
        return f"{method} manifest"
    return f"{method} {'segment' if parts[3].startswith('segments/') else 'object'}"


def make_driver(
    swift: SwiftNative, container: str, *, endpoint: str | None = None, **options: Any
) -> CheckedDriver:
    """A checked Swift driver on ``container``, through ``endpoint`` (a proxy) when given."""
    parameters = swift.parameters(container, **options)
    if endpoint:
        parameters["authurl"] = endpoint + "/auth/v1.0"
    return CheckedDriver(SwiftDriver(parse_parameters(parameters), retry=FAST_RETRY))


@pytest.fixture
def container(swift_native: SwiftNative) -> str:
    return swift_native.create_container()


@pytest.fixture
def proxy(swift_native: SwiftNative) -> Iterator[FaultProxy]:
    with FaultProxy(swift_native.server.endpoint, classify=swift_operation) as proxy:
        yield proxy


@pytest.fixture
async def proxied(
    swift_native: SwiftNative, container: str, proxy: FaultProxy
) -> AsyncIterator[CheckedDriver]:
    """A driver with 1 MiB segments talking through ``proxy``."""
    driver = make_driver(swift_native, container, endpoint=proxy.endpoint, chunksize=MiB)
    yield driver
    await driver.close()


async def write(driver: StorageDriver, path: str, data: bytes, *, append: bool) -> int:
    writer = await driver.writer(path, append=append)
    await writer.write(data)
    await writer.close()
    return writer.size


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    """(status, body) of a plain request, as a client following a redirect."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


# -- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "base"),
    [("", "files"), ("/registry", "registry/files"), ("a/b/", "a/b//files")],  # as Distribution
)
async def test_object_names_follow_distribution(
    swift_native: SwiftNative, container: str, prefix: str, base: str
) -> None:
    driver = make_driver(swift_native, container, prefix=prefix, chunksize=MiB)
    link = "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link"
    await driver.put_content(link, b"sha256:abc")
    writer = await driver.writer("/docker/up/data")
    await writer.write(random_bytes(MiB + 5))
    await writer.commit()
    names = swift_native.names(container)
    files = [name for name in names if "/segments/" not in "/" + name]
    assert files == [base + "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/"
                     "current/link", base + "/docker/up/data"]  # fmt: skip
    segments = sorted(set(names) - set(files))
    assert [name.rsplit("/", 1)[1] for name in segments] == ["0000000000000001", "0000000000000002"]
    head = swift_native.request("HEAD", f"/{container}/{base}/docker/up/data")
    assert head.headers["X-Object-Manifest"] == f"{container}/{segments[0].rsplit('/', 1)[0]}"
    assert int(head.headers["Content-Length"]) == MiB + 5
    assert await driver.list("/") == ["/docker"]
    await driver.close()


# -- the writer ---------------------------------------------------------------------------------


async def test_resume_in_another_driver(swift_native: SwiftNative, container: str) -> None:
    data = random_bytes(3 * MiB + 1)
    first = make_driver(swift_native, container, chunksize=MiB)
    second = make_driver(swift_native, container, chunksize=MiB)
    assert await write(first, "/u/data", data[: MiB + 7], append=False) == MiB + 7
    assert await write(second, "/u/data", data[MiB + 7 : 2 * MiB], append=True) == 2 * MiB
    writer = await first.writer("/u/data", append=True)
    assert writer.size == 2 * MiB
    await writer.write(data[2 * MiB :])
    await writer.commit()
    assert await second.get_content("/u/data") == data
    await first.close()
    await second.close()


async def test_a_writer_keeps_copies_of_what_it_is_given(
    swift_native: SwiftNative, container: str
) -> None:
    """The upload pipeline reuses its buffers once ``write`` returns: what a segment holds
    must not change with them, wherever the pieces fall against segment ends."""
    data = random_bytes(2 * MiB + 12345)
    driver = make_driver(swift_native, container, chunksize=MiB)
    writer = await driver.writer("/u/data")
    reused = bytearray(300_001)
    for start in range(0, len(data), len(reused)):
        piece = data[start : start + len(reused)]
        reused[: len(piece)] = piece
        await writer.write(memoryview(reused)[: len(piece)])
        reused[:] = bytes(len(reused))  # scribbled over, as the next batch would
    await writer.commit()
    assert await driver.get_content("/u/data") == data
    await driver.close()


async def test_a_segment_is_sent_while_it_fills(proxy: FaultProxy, proxied: StorageDriver) -> None:
    """The upload of a segment starts with its first bytes (so Swift stores it while the
    rest arrives), and one refused after all its bytes went out is sent again whole."""
    data = random_bytes(MiB + MiB // 2)
    proxy.fail("PUT segment", "status", status=503)
    writer = await proxied.writer("/u/data")
    await writer.write(data[: MiB // 4])
    await asyncio.sleep(1.0)  # far more than the segment's start takes, even on a busy machine
    filled_at = time.monotonic()
    await writer.write(data[MiB // 4 :])
    await writer.commit()
    assert await proxied.get_content("/u/data") == data
    segments = [record for record in proxy.recorded() if record.operation == "PUT segment"]
    assert [record.status for record in segments] == [503, 201, 201]
    assert segments[0].started < filled_at
    assert all(fault.times == 0 for fault in proxy.faults)


async def test_a_resume_state_needs_no_listing(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(2 * MiB)
    writer = await proxied.writer("/u/data")
    await writer.write(data[:MiB])
    await writer.close()
    state = writer.resume_state()
    assert state is not None
    assert 0 < state.memory_size < 4096
    proxy.recorded()
    proxy.clear()
    writer = await proxied.resume_writer("/u/data", state)
    assert writer.size == MiB
    await writer.write(data[MiB:])
    await writer.close()
    assert proxy.operations() == ["PUT segment"]  # no HEAD, no listing, the manifest stands
    assert await proxied.get_content("/u/data") == data


async def test_append_to_a_file_written_whole(swift_native: SwiftNative, container: str) -> None:
    driver = make_driver(swift_native, container, chunksize=MiB)
    first, second = random_bytes(MiB + 5), random_bytes(100)
    await driver.put_content("/f", first)
    writer = await driver.writer("/f", append=True)
    assert writer.size == len(first)
    await writer.write(second)
    await writer.commit()
    assert await driver.get_content("/f") == first + second
    assert (await driver.stat("/f")).size == len(first) + len(second)
    await driver.close()


async def test_a_writer_behind_another_fails(swift_native: SwiftNative, container: str) -> None:
    """Two writers continuing one file from the same point: the second's segment exists
    already, so it fails rather than overwrite it, and a commit that finds segments it does
    not know fails too."""
    driver = make_driver(swift_native, container, chunksize=MiB)
    await write(driver, "/u/data", random_bytes(10), append=False)
    ahead = await driver.writer("/u/data", append=True)
    behind = await driver.writer("/u/data", append=True)
    await ahead.write(random_bytes(MiB))
    await ahead.close()
    await behind.write(random_bytes(MiB))
    with pytest.raises(DriverError, match="another writer wrote segment 2"):
        await behind.close()
    stale = await driver.writer("/u/data", append=True)
    await write(driver, "/u/data", b"more", append=True)
    with pytest.raises(DriverError, match="changed under its writer"):
        await stale.commit()
    await driver.close()


async def test_move_and_delete_take_the_segments_along(
    swift_native: SwiftNative, container: str
) -> None:
    driver = make_driver(swift_native, container, chunksize=MiB)
    old, new = random_bytes(MiB + 1), random_bytes(2 * MiB + 1)
    for path, data in (("/blobs/data", old), ("/up/data", new)):
        writer = await driver.writer(path)
        await writer.write(data)
        await writer.commit()
    await driver.move("/up/data", "/blobs/data")
    assert await driver.get_content("/blobs/data") == new
    segments = [n for n in swift_native.names(container) if n.startswith("segments/")]
    assert len(segments) == 3  # the replaced file's went
    await driver.delete("/blobs")
    assert swift_native.names(container) == []
    await driver.close()


async def test_purge_deletes_orphaned_segments(swift_native: SwiftNative, container: str) -> None:
    driver = make_driver(swift_native, container, chunksize=MiB)
    kept = await driver.writer("/kept/data")
    await kept.write(random_bytes(MiB + 1))
    await kept.commit()
    orphan = await driver.writer("/lost/data")
    await orphan.write(random_bytes(MiB + 1))  # one segment sent, then the process "died"
    await driver.put_content("/lost/data", b"replaced")  # as Distribution deletes: manifest only
    swift = driver.inner
    assert isinstance(swift, SwiftDriver)
    now = datetime.now(UTC)
    assert await swift.purge_uncommitted(now - timedelta(hours=1)) == []
    later = now + timedelta(minutes=1)
    found = await swift.purge_uncommitted(later, dry_run=True)
    assert len(found) == 1
    assert found == await swift.purge_uncommitted(later)
    segments = [n for n in swift_native.names(container) if n.startswith("segments/")]
    assert len(segments) == 2  # the kept file's
    assert await driver.get_content("/kept/data") is not None
    await orphan.cancel()
    await driver.close()


# -- redirects ----------------------------------------------------------------------------------


async def test_redirects_are_temp_urls(swift_native: SwiftNative, container: str) -> None:
    driver = make_driver(swift_native, container, secretkey="a-temp-url-key", chunksize=MiB)
    data = random_bytes(MiB + 3)
    writer = await driver.writer("/blob")
    await writer.write(data)
    await writer.commit()
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert "temp_url_sig=" in url
    assert (await asyncio.to_thread(fetch, url)) == (200, data)
    assert (await asyncio.to_thread(fetch, url, "HEAD"))[0] == 200
    forged = re.sub(r"temp_url_sig=[^&]+", "temp_url_sig=" + "0" * 64, url)
    assert (await asyncio.to_thread(fetch, forged))[0] == 401
    assert (await asyncio.to_thread(fetch, url.partition("?")[0]))[0] == 401
    assert await driver.redirect_url("/blob", "PUT") is None
    # The key is the container's: another driver without secretkey signs with it too.
    other = make_driver(swift_native, container)
    assert await other.redirect_url("/blob") is not None
    await driver.close()
    await other.close()
    # A container without a key: no redirects (no key is made up).
    bare = make_driver(swift_native, swift_native.create_container())
    await bare.put_content("/blob", b"x")
    assert await bare.redirect_url("/blob") is None
    await bare.close()


# -- faults -------------------------------------------------------------------------------------


async def test_transient_errors_are_retried(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(3 * MiB)
    proxy.fail("PUT segment", "status", status=503)
    proxy.fail("PUT segment", "lose", after=1)  # stored, answer lost: found there by MD5
    proxy.fail("PUT object", "status", status=500)
    proxy.fail("GET object", "cut")
    proxy.fail("HEAD object", "status", status=503, times=2)
    proxy.fail("GET container", "drop")
    await proxied.put_content("/small", b"small")
    writer = await proxied.writer("/big")
    await writer.write(data)
    await writer.commit()
    assert await proxied.get_content("/big") == data
    assert await proxied.list("/") == ["/big", "/small"]
    assert (await proxied.stat("/small")).size == 5
    assert all(fault.times == 0 for fault in proxy.faults)


async def test_an_expired_token_is_renewed(
    swift_native: SwiftNative, container: str, proxy: FaultProxy, proxied: StorageDriver
) -> None:
    await proxied.put_content("/a", b"1")
    proxy.fail("GET object", "status", status=401)
    assert await proxied.get_content("/a") == b"1"
    assert proxy.count("Auth") == 2


async def test_persistent_failures_are_driver_errors(
    proxy: FaultProxy, proxied: StorageDriver
) -> None:
    await proxied.put_content("/a", b"1")
    proxy.fail("GET object", "status", status=503, times=1000)
    with pytest.raises(DriverError) as exc:
        await proxied.get_content("/a")
    assert exc.value.driver == "swift"
    assert "503" in str(exc.value)


async def test_bad_credentials_are_an_error(swift_native: SwiftNative, container: str) -> None:
    driver = make_driver(swift_native, container, password="wrong")
    with pytest.raises(DriverError, match=r"authentication .* failed: HTTP 401"):
        await driver.get_content("/a")
    await driver.close()


# -- parameters ---------------------------------------------------------------------------------

_BASE = {"username": "u", "password": "p4ss", "authurl": "http://swift/auth/v1.0",
         "container": "registry"}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"container": None}, "container is required"),
        ({"username": None}, "username is required"),
        ({"authurl": "swift:8080"}, "authurl must be an http or https URL"),
        ({"authurl": "https://keystone/v3"}, "Keystone authentication (authversion 2 or 3)"),
        ({"authversion": 2}, "Keystone authentication (authversion 2 or 3) is not supported"),
        ({"authversion": 7}, "authversion must be 1, 2 or 3"),
        ({"tenant": "t"}, "tenant applies to Keystone authentication only"),
        ({"domainid": "d"}, "domainid applies to Keystone authentication only"),
        ({"region": "r"}, "region applies to Keystone authentication only"),
        ({"endpointtype": "internal"}, "endpointtype applies to Keystone"),
        ({"tenantid": "t"}, "tenantid applies to Keystone authentication, or to accesskey"),
        ({"chunksize": 1000}, "chunksize must be from 1048576"),
        ({"insecureskipverify": "maybe"}, "insecureskipverify must be a boolean"),
        ({"tempurlmethods": ["GET", "FETCH"]}, "tempurlmethods must be a list"),
        ({"rootdirectory": "/r"}, "unknown parameter 'rootdirectory' for storage driver 'swift'"),
    ],
)
def test_parameters_are_checked(changes: dict[str, Any], message: str) -> None:
    parameters = {key: value for key, value in {**_BASE, **changes}.items() if value is not None}
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        create_driver(StorageConfig("swift", parameters))
    assert "\n" not in str(exc.value)
    assert "p4ss" not in str(exc.value)


def test_parameters_as_distribution_and_the_environment_give_them() -> None:
    parameters = parse_parameters(
        {**_BASE, "authversion": "1", "chunksize": "5242880", "insecureskipverify": "true",
         "tempurlmethods": "GET,HEAD", "tempurlcontainerkey": "false", "endpointtype": "public",
         "secretkey": "s3cr3t", "accesskey": "ak", "tenantid": "tid", "prefix": "/p"}
    )  # fmt: skip
    assert (parameters.chunksize, parameters.insecureskipverify) == (5 << 20, True)
    assert parameters.tempurlmethods == ("GET", "HEAD")
    assert "s3cr3t" not in repr(parameters)
    assert "p4ss" not in repr(parameters)


async def test_segments_past_a_gap_are_dropped(swift_native: SwiftNative, container: str) -> None:
    """Segments go up several at once: when one fails, those after it that landed are no
    part of the file, and the next writer drops them."""
    driver = make_driver(swift_native, container, chunksize=MiB)
    head = random_bytes(MiB)
    await write(driver, "/u/data", head, append=False)
    manifest = swift_native.request("HEAD", f"/{container}/files/u/data")
    segments = manifest.headers["X-Object-Manifest"].partition("/")[2]
    stray = f"/{container}/{segments}/{3:016d}"  # segment 2 never landed
    swift_native.request("PUT", stray, content=b"stray").raise_for_status()
    writer = await driver.writer("/u/data", append=True)
    assert writer.size == MiB
    await writer.write(b"tail")
    await writer.commit()
    assert await driver.get_content("/u/data") == head + b"tail"
    await driver.close()


def test_a_bad_parameter_stops_the_start_in_the_parent() -> None:
    with pytest.raises(ConfigError, match=r"^storage driver 'swift': chunksize must be from"):
        validate_storage(StorageConfig("swift", {**_BASE, "chunksize": 5}))
    validate_storage(StorageConfig("swift", _BASE))  # no I/O: nothing is reached


async def test_deletes_go_in_bulk(proxy: FaultProxy, proxied: StorageDriver) -> None:
    """With the cluster's bulk middleware, a directory goes in one request per 1000 names
    (sent again when its answer is lost: deleting twice is harmless)."""
    for number in range(5):
        await proxied.put_content(f"/dir/{number}", b"x")
    writer = await proxied.writer("/dir/big")
    await writer.write(random_bytes(2 * MiB + 1))
    await writer.commit()
    proxy.recorded()
    proxy.clear()
    proxy.fail("POST container", "lose")
    await proxied.delete("/dir")
    assert proxy.count("POST container") == 3  # the files, lost and sent again; the segments
    assert "DELETE object" not in proxy.operations()
    with pytest.raises(PathNotFound):
        await proxied.list("/dir")
