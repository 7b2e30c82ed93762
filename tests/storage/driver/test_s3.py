"""The S3 driver: the contract on moto and on Swift, and what only S3 has."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.storage.driver.contract import DriverContract, random_bytes, read_all
from tests.support.faultproxy import FaultProxy
from tests.support.s3servers import S3Server
from wharf.config.model import StorageConfig
from wharf.storage.driver import DriverError, PathNotFound, ResumeState, StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver
from wharf.storage.driver.s3.client import RetryPolicy
from wharf.storage.driver.s3.driver import S3Driver
from wharf.storage.driver.s3.params import parse_parameters
from wharf.storage.driver.s3.writer import MAX_PENDING, PARALLEL_PARTS

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
async def driver(s3_server: S3Server) -> AsyncIterator[StorageDriver]:
    # A fresh bucket per test; moto with the bucket's root, Swift below a root directory.
    root = "" if s3_server.kind == "moto" else "/wharf/root"
    parameters = s3_server.parameters(s3_server.create_bucket(), rootdirectory=root)
    driver = create_driver(StorageConfig("s3", parameters))
    yield driver
    await driver.close()


@pytest.mark.s3
class TestS3Contract(DriverContract):
    mtime_resolution = 1.1  # Last-Modified has whole seconds
    walk_etags = True


# -- helpers ------------------------------------------------------------------------------------

MiB = 1 << 20
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
_KNOBS = ("page_size", "read_chunk", "read_ahead", "read_budget")


def make_driver(
    server: S3Server, bucket: str, *, endpoint: str | None = None, **options: Any
) -> CheckedDriver:
    """A checked S3 driver on ``bucket``, through ``endpoint`` (a proxy) when given."""
    knobs = {name: options.pop(name) for name in _KNOBS if name in options}
    parameters = server.parameters(bucket, **options)
    if endpoint:
        parameters["regionendpoint"] = endpoint
    return CheckedDriver(S3Driver(parse_parameters(parameters), retry=FAST_RETRY, **knobs))


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint) as proxy:
        yield proxy


@pytest.fixture
async def proxied(
    s3_server: S3Server, bucket: str, proxy: FaultProxy
) -> AsyncIterator[CheckedDriver]:
    """A driver with 5 MiB parts talking through ``proxy``."""
    driver = make_driver(s3_server, bucket, endpoint=proxy.endpoint, chunksize=5 * MiB)
    yield driver
    await driver.close()


def keys(server: S3Server, bucket: str, prefix: str = "") -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def uploads(server: S3Server, bucket: str) -> list[str]:
    response = server.client().list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in response.get("Uploads", [])]


def fetch(url: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of a plain urllib request, as a client following a redirect."""
    try:
        request = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), dict(exc.headers)


async def write(driver: StorageDriver, path: str, data: bytes, *, append: bool) -> int:
    writer = await driver.writer(path, append=append)
    await writer.write(data)
    await writer.close()
    return writer.size


async def write_keeping_state(
    driver: StorageDriver, path: str, data: bytes, state: ResumeState | None = None
) -> ResumeState:
    """Write ``data`` (continuing from ``state`` when given) and return the closed writer's
    resume state."""
    if state is None:
        writer = await driver.writer(path)
    else:
        writer = await driver.resume_writer(path, state)
    await writer.write(data)
    await writer.close()
    kept = writer.resume_state()
    assert kept is not None
    return kept


# -- layout -------------------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize(
    ("root", "prefix"), [("", ""), ("/", ""), ("/registry/", "registry/"), ("a/b", "a/b/")]
)
async def test_keys_follow_distribution(moto_server: S3Server, root: str, prefix: str) -> None:
    bucket = moto_server.create_bucket()
    driver = make_driver(moto_server, bucket, rootdirectory=root)
    link = "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link"
    await driver.put_content(link, b"sha256:abc")
    assert keys(moto_server, bucket) == [prefix + link[1:]]
    # What Distribution wrote is read as is.
    moto_server.client().put_object(Bucket=bucket, Key=prefix + "docker/x", Body=b"from go")
    assert await driver.get_content("/docker/x") == b"from go"
    assert await driver.list("/") == ["/docker"]
    await driver.close()


@pytest.mark.s3
async def test_pending_objects_stay_hidden(s3_server: S3Server, bucket: str) -> None:
    driver = make_driver(s3_server, bucket, chunksize=5 * MiB)
    await driver.put_content("/up/startedat", b"now")
    assert await write(driver, "/up/data", b"x" * 1000, append=False) == 1000
    assert keys(s3_server, bucket) == ["up/data#pending.00000000000000000000", "up/startedat"]
    assert await driver.list("/up") == ["/up/startedat"]
    assert [info.path async for info in driver.walk("/")] == ["/up", "/up/startedat"]
    with pytest.raises(PathNotFound):
        await driver.stat("/up/data")
    await driver.delete("/up")  # the session directory, pending bytes included
    assert keys(s3_server, bucket) == []
    with pytest.raises(PathNotFound):
        await driver.writer("/up/data", append=True)
    await driver.close()


# -- the writer ---------------------------------------------------------------------------------


@pytest.mark.s3
async def test_resume_in_another_driver(s3_server: S3Server, bucket: str) -> None:
    data = random_bytes(11 * MiB + 1)
    first = make_driver(s3_server, bucket, chunksize=5 * MiB)
    second = make_driver(s3_server, bucket, chunksize=5 * MiB)
    assert await write(first, "/u/data", data[: 7 * MiB], append=False) == 7 * MiB
    # A 5 MiB part, and the 2 MiB after it in a pending object.
    assert uploads(s3_server, bucket) == ["u/data"]
    assert keys(s3_server, bucket) == [f"u/data#pending.{5 * MiB:020d}"]
    assert await write(second, "/u/data", data[7 * MiB : 9 * MiB], append=True) == 9 * MiB
    assert keys(s3_server, bucket) == [f"u/data#pending.{n * MiB:020d}" for n in (5, 7)]
    writer = await first.writer("/u/data", append=True)
    assert writer.size == 9 * MiB
    await writer.write(data[9 * MiB :])
    await writer.commit()
    assert await second.get_content("/u/data") == data
    assert keys(s3_server, bucket) == ["u/data"]
    assert uploads(s3_server, bucket) == []
    await first.close()
    await second.close()


@pytest.mark.s3
async def test_a_resume_state_another_writer_overtook_fails(
    s3_server: S3Server, bucket: str
) -> None:
    """A state whose pending object another writer has merged into a longer one (the caller
    broke its promise that nothing changed) fails the commit instead of mixing bytes in."""
    driver = make_driver(s3_server, bucket, chunksize=5 * MiB)
    stale = await write_keeping_state(driver, "/u/data", b"a" * 500)
    for _ in range(MAX_PENDING):  # up to the merge of every pending object into the first
        await write(driver, "/u/data", b"b" * 500, append=True)
    assert len(keys(s3_server, bucket, "u/data#")) < MAX_PENDING
    writer = await driver.resume_writer("/u/data", stale)
    assert writer.size == 500
    with pytest.raises(DriverError, match="pending bytes changed"):
        await writer.commit()
    await driver.close()


@pytest.mark.s3
async def test_a_resume_state_says_what_keeping_it_costs(s3_server: S3Server, bucket: str) -> None:
    """The registry bounds the memory of the states it keeps by what they say they take:
    each part known adds to it."""
    driver = make_driver(s3_server, bucket, chunksize=5 * MiB)
    small = await write_keeping_state(driver, "/u/data", b"a" * 500)
    larger = await write_keeping_state(driver, "/u/data", random_bytes(11 * MiB), small)
    assert 0 < small.memory_size < larger.memory_size < 4096
    await driver.close()


@pytest.mark.s3
async def test_small_appends_send_no_copies(
    s3_server: S3Server, bucket: str, proxy: FaultProxy, proxied: StorageDriver
) -> None:
    data = random_bytes(10 * MiB + 100)
    chunk = 256 * 1024
    await write(proxied, "/u/data", data[:chunk], append=False)
    for start in range(chunk, len(data), chunk):
        await write(proxied, "/u/data", data[start : start + chunk], append=True)
    operations = proxy.operations()
    assert not {"CompleteMultipartUpload", "CopyObject", "UploadPartCopy"} & set(operations)
    assert operations.count("UploadPart") == 2  # two full 5 MiB parts, nothing re-sent
    assert operations.count("CreateMultipartUpload") == 1
    sent = sum(int(r.headers.get("content-length", 0)) for r in proxy.recorded())
    assert sent < 2.1 * len(data)  # new bytes once as pending, once inside a part
    assert len(keys(s3_server, bucket, "u/data#")) == 1  # the 100 bytes after the parts
    writer = await proxied.writer("/u/data", append=True)
    await writer.commit()
    assert proxy.count("CompleteMultipartUpload") == 1
    assert await proxied.get_content("/u/data") == data
    assert keys(s3_server, bucket) == ["u/data"]


@pytest.mark.s3
async def test_many_small_closes_merge_pending_objects(
    s3_server: S3Server, bucket: str, proxied: StorageDriver
) -> None:
    data = random_bytes(70 * 500)  # a merge at the 64th close
    await write(proxied, "/u/data", data[:500], append=False)
    for start in range(500, len(data), 500):
        await write(proxied, "/u/data", data[start : start + 500], append=True)
        assert len(keys(s3_server, bucket, "u/data#")) <= MAX_PENDING
    writer = await proxied.writer("/u/data", append=True)
    assert writer.size == len(data)
    await writer.commit()
    assert await proxied.get_content("/u/data") == data
    assert keys(s3_server, bucket) == ["u/data"]


@pytest.mark.s3
async def test_large_writes_send_parts_in_parallel(
    proxy: FaultProxy, proxied: StorageDriver
) -> None:
    data = random_bytes(40 * MiB)
    writer = await proxied.writer("/blob")
    await writer.write(data)
    await writer.commit()
    assert proxy.count("UploadPart") == 8
    assert 2 <= proxy.max_in_flight["UploadPart"] <= PARALLEL_PARTS
    assert await proxied.get_content("/blob") == data


@pytest.mark.s3
async def test_append_to_a_committed_file(s3_server: S3Server, proxy: FaultProxy) -> None:
    for size in (1000, 6 * MiB):  # continued from memory, and by UploadPartCopy
        bucket = s3_server.create_bucket()
        driver = make_driver(s3_server, bucket, endpoint=proxy.endpoint, chunksize=5 * MiB)
        first, second = random_bytes(size), random_bytes(100)
        await driver.put_content("/f", first)
        writer = await driver.writer("/f", append=True)
        assert writer.size == size
        proxy.clear()
        await writer.commit()  # nothing written: the committed object is the file
        assert not {"PutObject", "CompleteMultipartUpload"} & set(proxy.operations())
        writer = await driver.writer("/f", append=True)
        await writer.write(second)
        await writer.commit()
        assert await driver.get_content("/f") == first + second
        assert keys(s3_server, bucket) == ["f"]
        await driver.close()


@pytest.mark.s3
async def test_resume_an_upload_started_by_distribution(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    part = random_bytes(5 * MiB)
    upload = client.create_multipart_upload(Bucket=bucket, Key="r/_uploads/u/data")
    client.upload_part(
        Bucket=bucket, Key="r/_uploads/u/data", UploadId=upload["UploadId"], PartNumber=1, Body=part
    )
    driver = make_driver(s3_server, bucket, rootdirectory="/r")
    writer = await driver.writer("/_uploads/u/data", append=True)
    assert writer.size == 5 * MiB
    await writer.write(b"tail")
    await writer.commit()
    assert await driver.get_content("/_uploads/u/data") == part + b"tail"
    await driver.close()


@pytest.mark.s3
async def test_cancel_and_delete_leave_nothing(s3_server: S3Server, bucket: str) -> None:
    driver = make_driver(s3_server, bucket, chunksize=5 * MiB)
    for finish in ("cancel", "delete"):
        await write(driver, "/d/up/data", random_bytes(6 * MiB), append=False)
        await write(driver, "/d/up/data", b"pending", append=True)
        assert uploads(s3_server, bucket)
        assert keys(s3_server, bucket)
        if finish == "cancel":
            await (await driver.writer("/d/up/data", append=True)).cancel()
        else:
            await driver.delete("/d")
        assert uploads(s3_server, bucket) == []
        assert keys(s3_server, bucket) == []
    await driver.close()


@pytest.mark.s3
async def test_purge_uncommitted(s3_server: S3Server, bucket: str) -> None:
    driver = make_driver(s3_server, bucket, chunksize=5 * MiB, rootdirectory="/r")
    await write(driver, "/a/_uploads/u/data", random_bytes(6 * MiB), append=False)
    now = datetime.now(UTC)
    if s3_server.kind == "swift":  # moto reports every upload as initiated in 2010
        assert await driver.inner.purge_uncommitted(now - timedelta(hours=1)) == []
    later = now + timedelta(minutes=1)
    assert await driver.inner.purge_uncommitted(later, dry_run=True) == ["/a/_uploads/u/data"]
    assert uploads(s3_server, bucket) == ["r/a/_uploads/u/data"]
    assert await driver.inner.purge_uncommitted(later) == ["/a/_uploads/u/data"]
    assert uploads(s3_server, bucket) == []
    await driver.close()


# -- move, list, delete -------------------------------------------------------------------------


@pytest.mark.s3
async def test_move_copies_in_parallel_parts_above_the_threshold(
    s3_server: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    driver = make_driver(
        s3_server,
        bucket,
        endpoint=proxy.endpoint,
        multipartcopythresholdsize=5 * MiB,
        multipartcopychunksize=5 * MiB,
        multipartcopymaxconcurrency=3,
    )
    big, small = random_bytes(23 * MiB), random_bytes(MiB)
    await driver.put_content("/up/big", big)
    await driver.put_content("/up/small", small)
    proxy.clear()
    await driver.move("/up/big", "/blobs/big")
    assert proxy.count("UploadPartCopy") == 5
    assert 2 <= proxy.max_in_flight["UploadPartCopy"] <= 3
    assert proxy.count("CopyObject") == 0
    await driver.move("/up/small", "/blobs/small")
    assert proxy.count("CopyObject") == 1
    assert await driver.get_content("/blobs/big") == big
    assert await driver.get_content("/blobs/small") == small
    assert keys(s3_server, bucket) == ["blobs/big", "blobs/small"]
    await driver.close()


@pytest.mark.s3
async def test_list_walk_and_delete_past_one_page(
    s3_server: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    # Swift's listing pages are 100 keys in the fixture; moto's are S3's 1000.
    count = 1001 if s3_server.kind == "moto" else 250
    names = [f"d/f{i:05d}" for i in range(count)]
    client = s3_server.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"x"), names))
    driver = make_driver(s3_server, bucket, endpoint=proxy.endpoint)
    assert await driver.list("/d") == ["/" + name for name in names]
    assert len([info async for info in driver.walk("/")]) == count + 1
    proxy.clear()
    await driver.delete("/d")
    assert proxy.count("DeleteObjects") == (2 if count > 1000 else 3)
    assert keys(s3_server, bucket) == []
    with pytest.raises(PathNotFound):
        await driver.list("/d")
    await driver.close()


@pytest.mark.s3
async def test_delete_batches_follow_the_page_size(s3_server: S3Server, proxy: FaultProxy) -> None:
    bucket = s3_server.create_bucket()
    driver = make_driver(s3_server, bucket, endpoint=proxy.endpoint, page_size=7)
    await asyncio.gather(*(driver.put_content(f"/d/{i}", b"x") for i in range(30)))
    assert len(await driver.list("/d")) == 30
    proxy.clear()
    await driver.delete("/d")
    assert proxy.count("DeleteObjects") == 5
    # Swift updates its container listings after the deletes answer: a page may still end
    # as truncated while the last deletes land, and one more listing finds nothing left.
    assert proxy.count("ListObjectsV2") in ((5,) if s3_server.kind == "moto" else (5, 6))
    await driver.close()


# -- redirects, signatures, settings ------------------------------------------------------------


@pytest.mark.s3
async def test_presigned_urls(s3_server: S3Server, bucket: str) -> None:
    driver = make_driver(s3_server, bucket)
    await driver.put_content("/blob", b"presigned bytes")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert (await asyncio.to_thread(fetch, url))[:2] == (200, b"presigned bytes")
    head = await driver.redirect_url("/blob", "HEAD")
    assert head is not None
    status, _, headers = await asyncio.to_thread(fetch, head, "HEAD")
    assert (status, headers["Content-Length"]) == (200, "15")
    assert await driver.redirect_url("/blob", "PUT") is None
    if s3_server.checks_signatures:
        forged = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert (await asyncio.to_thread(fetch, forged))[0] == 403
    await driver.close()


@pytest.mark.s3
async def test_redirect_endpoint(s3_server: S3Server, bucket: str, proxy: FaultProxy) -> None:
    driver = make_driver(s3_server, bucket, redirectendpoint=proxy.endpoint)
    await driver.put_content("/blob", b"public")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert url.startswith(proxy.endpoint + "/")
    assert (await asyncio.to_thread(fetch, url))[:2] == (200, b"public")  # signed for that host
    assert proxy.operations() == ["GetObject"]
    await driver.close()


@pytest.mark.s3
async def test_signature_v2(swift_server: S3Server, proxy_swift: FaultProxy) -> None:
    bucket = swift_server.create_bucket()
    driver = make_driver(swift_server, bucket, endpoint=proxy_swift.endpoint, v4auth=False)
    await driver.put_content("/a", b"v2")
    assert await driver.get_content("/a") == b"v2"
    url = await driver.redirect_url("/a")
    assert url is not None
    assert "Signature=" in url
    assert "X-Amz-" not in url
    assert (await asyncio.to_thread(fetch, url))[:2] == (200, b"v2")
    # PutObject and GetObject signed with SigV2, then the presigned GET signed in its query.
    signed = [r.headers.get("authorization", "")[:17] for r in proxy_swift.recorded()]
    assert signed == ["AWS wharf:tester:", "AWS wharf:tester:", ""]
    await driver.close()


@pytest.fixture
def proxy_swift(swift_server: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(swift_server.endpoint) as proxy:
        yield proxy


@pytest.mark.s3
async def test_default_credential_chain(
    swift_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = swift_server.create_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", swift_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", swift_server.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    driver = make_driver(swift_server, bucket, accesskey="", secretkey="")
    await driver.put_content("/a", b"from the environment")
    assert await driver.get_content("/a") == b"from the environment"
    await driver.close()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    driver = make_driver(swift_server, bucket, accesskey="", secretkey="")
    with pytest.raises(DriverError, match="SignatureDoesNotMatch"):
        await driver.get_content("/a")
    await driver.close()


@pytest.mark.s3
async def test_object_settings_reach_s3(moto_server: S3Server) -> None:
    with FaultProxy(moto_server.endpoint) as proxy:
        bucket = moto_server.create_bucket()
        driver = make_driver(
            moto_server,
            bucket,
            endpoint=proxy.endpoint,
            sessiontoken="the-token",
            storageclass="reduced_redundancy",
            objectacl="bucket-owner-full-control",
            encrypt=True,
            useragent="wharf-test/1",
            chunksize=5 * MiB,
        )
        await driver.put_content("/a", b"x")
        await write(driver, "/u", b"pending", append=False)
        recorded = proxy.recorded()
        put, pending = recorded[0].headers, recorded[-1].headers
        assert put["x-amz-security-token"] == "the-token"
        assert put["x-amz-storage-class"] == "REDUCED_REDUNDANCY"
        assert put["x-amz-acl"] == "bucket-owner-full-control"
        assert put["x-amz-server-side-encryption"] == "AES256"
        assert "wharf-test/1" in put["user-agent"]
        assert pending["x-amz-server-side-encryption"] == "AES256"
        assert "x-amz-storage-class" not in pending
        assert "x-amz-acl" not in pending
        await driver.close()
        proxy.clear()
        driver = make_driver(
            moto_server, bucket, endpoint=proxy.endpoint, storageclass="NONE", keyid="k1",
            encrypt=True,
        )  # fmt: skip
        await driver.put_content("/b", b"x")
        put = proxy.recorded()[0].headers
        assert "x-amz-storage-class" not in put
        assert "x-amz-acl" not in put
        assert put["x-amz-server-side-encryption"] == "aws:kms"
        assert put["x-amz-server-side-encryption-aws-kms-key-id"] == "k1"
        await driver.close()


# -- parameters ---------------------------------------------------------------------------------

_BASE = {"bucket": "b", "region": "us-east-1", "accesskey": "AKIA", "secretkey": "s3cr3t"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bucket": None}, "bucket must name a bucket"),
        ({"region": None}, "region is required"),
        ({"region": "mars-1"}, "region must be an AWS region"),
        ({"regionendpoint": "ftp://x"}, "regionendpoint must be a URL"),
        ({"secretkey": ""}, "secretkey is required with accesskey"),
        ({"accesskey": "", "secretkey": "", "sessiontoken": "t"}, "sessiontoken requires"),
        ({"v4auth": False}, "v4auth can be false only"),
        ({"v4auth": "maybe"}, "v4auth must be a boolean"),
        ({"keyid": "k"}, "keyid requires encrypt: true"),
        ({"chunksize": 5 * MiB - 1}, "chunksize must be 5242880 to 5368709120"),
        ({"chunksize": "ten"}, "chunksize must be an integer"),
        ({"chunksize": True}, "chunksize must be an integer"),
        ({"multipartcopychunksize": 6 << 30}, "multipartcopychunksize must be"),
        ({"multipartcopymaxconcurrency": 0}, "multipartcopymaxconcurrency must be at least 1"),
        ({"multipartcopythresholdsize": -1}, "multipartcopythresholdsize must be 0 to"),
        ({"storageclass": "GLACIER"}, "storageclass must be one of NONE, STANDARD"),
        ({"objectacl": "secret"}, "objectacl must be one of private"),
        ({"loglevel": "verbose"}, "loglevel must be one of off, debug"),
        ({"redirectendpoint": "s3.example.com"}, "redirectendpoint must be a URL"),
        ({"secure": []}, "secure must be a boolean"),
        ({"rootdirectory": ["a"]}, "rootdirectory must be a string"),
        ({"maxthreads": 4}, "unknown parameter 'maxthreads' for storage driver 's3'"),
    ],
)
def test_parameters_are_checked(changes: dict[str, Any], message: str) -> None:
    parameters = {key: value for key, value in {**_BASE, **changes}.items() if value is not None}
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        create_driver(StorageConfig("s3", parameters))
    assert "\n" not in str(exc.value)
    assert "s3cr3t" not in str(exc.value)


def test_parameters_as_distribution_and_the_environment_give_them() -> None:
    parameters = parse_parameters(
        {
            **_BASE,
            "regionendpoint": "minio:9000",
            "region": "",
            "secure": "false",
            "v4auth": "false",
            "chunksize": "6291456",
            "storageclass": "none",
            "loglevel": False,  # YAML's off
            "encrypt": "true",
            "keyid": "k",
            "rootdirectory": None,
        }
    )
    assert (parameters.region, parameters.secure, parameters.v4auth) == ("us-east-1", False, False)
    assert (parameters.chunksize, parameters.storageclass) == (6 * MiB, "NONE")
    assert (parameters.loglevel, parameters.rootdirectory) == ("off", "")
    assert parameters.objectacl is None
    assert "s3cr3t" not in repr(parameters)
    driver = S3Driver(parameters)
    assert driver.client.s3.meta.endpoint_url == "http://minio:9000"
    assert driver.client.s3.meta.config.signature_version == "s3"  # type: ignore[attr-defined]


@pytest.mark.s3
async def test_loglevel_debug_logs_each_call(
    moto_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("wharf.storage.s3")
    level = logger.level
    try:
        driver = make_driver(moto_server, moto_server.create_bucket(), loglevel="debug")
        with caplog.at_level(logging.DEBUG, "wharf.storage.s3"):
            await driver.put_content("/a", b"x")
        assert "s3 PutObject took" in caplog.text
        await driver.close()
    finally:
        logger.setLevel(level)


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.s3
async def test_transient_errors_are_retried(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(6 * MiB)
    proxy.fail("UploadPart", "status", status=503)
    proxy.fail("PutObject", "status", status=500)
    proxy.fail("GetObject", "drop")
    proxy.fail("ListObjectsV2", "cut")
    proxy.fail("HeadObject", "status", status=503, times=2)
    await proxied.put_content("/small", b"small")
    writer = await proxied.writer("/big")
    await writer.write(data)
    await writer.commit()
    assert await proxied.get_content("/big") == data
    assert await proxied.list("/") == ["/big", "/small"]
    assert (await proxied.stat("/small")).size == 5
    assert all(fault.times == 0 for fault in proxy.faults)
    assert proxy.count("UploadPart") == 3  # two parts, one sent again


@pytest.mark.s3
async def test_a_lost_complete_is_checked_not_repeated(
    s3_server: S3Server, proxy: FaultProxy, proxied: StorageDriver
) -> None:
    data = random_bytes(7 * MiB)
    proxy.fail("CompleteMultipartUpload", "lose")
    writer = await proxied.writer("/blob")
    await writer.write(data)
    await writer.commit()
    # Checked with ListParts first; Swift keeps a completed upload listed for a while, and
    # takes the same completion again.
    assert proxy.operations("ListParts", "CompleteMultipartUpload")[:2] == [
        "CompleteMultipartUpload",
        "ListParts",
    ]
    assert proxy.count("CompleteMultipartUpload") == (1 if s3_server.kind == "moto" else 2)
    assert await proxied.get_content("/blob") == data


@pytest.mark.s3
async def test_a_lost_create_is_adopted(
    s3_server: S3Server, bucket: str, proxy: FaultProxy, proxied: StorageDriver
) -> None:
    data = random_bytes(6 * MiB)
    proxy.fail("CreateMultipartUpload", "lose")
    writer = await proxied.writer("/blob")
    await writer.write(data)
    await writer.commit()
    assert proxy.count("CreateMultipartUpload") == 1
    assert await proxied.get_content("/blob") == data
    assert uploads(s3_server, bucket) == []


@pytest.mark.s3
@pytest.mark.parametrize("failing", ["UploadPart", "PutObject", "CompleteMultipartUpload"])
async def test_persistent_failures_leave_a_resumable_prefix(
    s3_server: S3Server, bucket: str, proxy: FaultProxy, proxied: StorageDriver, failing: str
) -> None:
    data = random_bytes(17 * MiB + 5)
    await write(proxied, "/u/data", data[: 6 * MiB], append=False)
    proxy.fail(failing, "status", status=500, times=1000)
    writer = await proxied.writer("/u/data", append=True)

    async def send() -> None:
        await writer.write(data[6 * MiB :])  # 2 parts, then 1 MiB + 5 bytes pending
        await (writer.commit() if failing == "CompleteMultipartUpload" else writer.close())

    with pytest.raises(DriverError) as exc:
        await send()
    assert exc.value.driver == "s3"
    await writer.close()
    assert "u/data" not in keys(s3_server, bucket)  # never visible before a commit succeeds
    proxy.clear()
    writer = await proxied.writer("/u/data", append=True)
    size = writer.size
    assert 6 * MiB <= size <= len(data)
    await writer.write(data[size:])
    await writer.commit()
    assert await proxied.get_content("/u/data") == data
    assert keys(s3_server, bucket) == ["u/data"]
    assert uploads(s3_server, bucket) == []


# -- the reader ---------------------------------------------------------------------------------


@pytest.mark.s3
async def test_large_reads_use_parallel_ranges(
    s3_server: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    driver = make_driver(s3_server, bucket, endpoint=proxy.endpoint, read_chunk=4 * MiB)
    data = random_bytes(40 * MiB + 3)
    await driver.put_content("/blob", data)
    proxy.clear()
    assert await read_all(driver, "/blob", 3) == data[3:]
    assert proxy.count("GetObject") == 10
    assert 2 <= proxy.max_in_flight["GetObject"] <= 5
    await driver.close()
    # No read-ahead budget left: one range at a time, still every byte.
    driver = make_driver(
        s3_server, bucket, endpoint=proxy.endpoint, read_chunk=4 * MiB, read_budget=0
    )
    proxy.clear()
    assert await read_all(driver, "/blob") == data
    assert proxy.max_in_flight["GetObject"] == 1
    await driver.close()


@pytest.mark.s3
async def test_a_file_replaced_while_read_fails_the_read(s3_server: S3Server, bucket: str) -> None:
    driver = make_driver(s3_server, bucket, read_chunk=MiB, read_ahead=1)
    await driver.put_content("/blob", random_bytes(4 * MiB))
    reader = await driver.reader("/blob")

    async def read_while_replaced() -> None:
        for _ in range(4):
            assert len(await reader.read(MiB)) == MiB
            await driver.put_content("/blob", random_bytes(4 * MiB))

    with pytest.raises(DriverError, match="changed while being read"):
        await read_while_replaced()
    await reader.close()
    await driver.close()


# -- a writer killed mid-upload -----------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, json, random, sys
    from wharf.storage.driver.s3.driver import S3Driver
    from wharf.storage.driver.s3.params import parse_parameters

    async def main() -> None:
        driver = S3Driver(parse_parameters(json.loads(sys.argv[1])))
        stream = random.Random(7).randbytes(int(sys.argv[2]))
        written, append = 0, False
        while True:  # requests of 1.5 MiB in 256 KiB writes, as uploads send them
            writer = await driver.writer("/u/data", append=append)
            assert writer.size == written, (writer.size, written)
            for _ in range(6):
                await writer.write(stream[written : written + 256 * 1024])
                written += 256 * 1024
            await writer.close()
            append = True
            print(written, flush=True)

    asyncio.run(main())
    """
)


def _run_and_kill(arguments: list[str], kill_after: int, delay: float) -> None:
    """Run the writer until it has closed ``kill_after`` bytes, then kill it ``delay`` later,
    somewhere inside the next request."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with subprocess.Popen(arguments, stdout=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None
        while int(process.stdout.readline() or 0) < kill_after:
            assert process.poll() is None
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.mark.s3
@pytest.mark.slow
async def test_a_killed_writer_leaves_a_resumable_prefix(s3_server: S3Server, bucket: str) -> None:
    total = 24 * MiB
    stream = random.Random(7).randbytes(total)
    parameters = s3_server.parameters(bucket, chunksize=5 * MiB)
    for attempt, kill_after in enumerate((3 * MiB, 8 * MiB, 14 * MiB)):
        driver = make_driver(s3_server, bucket, chunksize=5 * MiB)
        with contextlib.suppress(PathNotFound):
            await driver.delete("/u")
        arguments = [sys.executable, "-c", _KILLED_WRITER, json.dumps(parameters), str(total)]
        await asyncio.to_thread(_run_and_kill, arguments, kill_after, 0.03 * attempt)
        writer = await driver.writer("/u/data", append=True)
        size = writer.size
        assert kill_after <= size < total
        await writer.write(stream[size:])
        await writer.commit()
        assert await driver.get_content("/u/data") == stream
        await driver.close()
