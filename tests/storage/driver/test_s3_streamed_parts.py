"""S3 writers sending an announced body as one part while it is written (on moto and Swift)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.storage.driver.contract import random_bytes, read_all
from tests.storage.driver.test_s3 import bucket, proxied, proxy, uploads
from tests.support.faultproxy import FaultProxy
from tests.support.s3servers import S3Server
from wharf.storage.driver import DriverError, FileWriter, PathNotFound, StorageDriver

pytestmark = pytest.mark.s3
__all__ = ["bucket", "proxied", "proxy"]  # the fixtures, shared with test_s3

MiB = 1 << 20
PATH = "/uploads/session/data"


async def feed(writer: FileWriter, data: bytes, piece: int = MiB) -> None:
    """``data`` written as a request body arrives: in pieces, through one reused buffer."""
    buffer = bytearray(piece)
    for offset in range(0, len(data), piece):
        chunk = data[offset : offset + piece]
        buffer[: len(chunk)] = chunk
        await writer.write(memoryview(buffer)[: len(chunk)])


async def append_body(driver: StorageDriver, data: bytes, announced: int | None) -> int:
    try:
        writer = await driver.writer(PATH, append=True)
    except PathNotFound:
        writer = await driver.writer(PATH)
    if announced is not None:
        writer.announce(announced)
    await feed(writer, data)
    await writer.close()
    return writer.size


async def commit(driver: StorageDriver) -> None:
    writer = await driver.writer(PATH, append=True)
    await writer.commit()


async def test_an_announced_body_is_one_part(proxy: FaultProxy, proxied: StorageDriver) -> None:
    first, second = random_bytes(12 * MiB), random_bytes(7 * MiB + 3)
    assert await append_body(proxied, first, len(first)) == len(first)
    assert await append_body(proxied, second, len(second)) == len(first) + len(second)
    # Buffered, 5 MiB chunks would have made two parts and a tail of each body.
    assert proxy.count("UploadPart") == 2
    parts = [r for r in proxy.recorded() if r.operation == "UploadPart"]
    assert {r.headers["x-amz-content-sha256"] for r in parts} == {"UNSIGNED-PAYLOAD"}
    assert not [r for r in parts if "expect" in r.headers]  # the bytes go with the headers
    await commit(proxied)
    assert await read_all(proxied, PATH) == first + second


async def test_a_body_that_ends_early_keeps_its_bytes(
    s3_server: S3Server, bucket: str, proxy: FaultProxy, proxied: StorageDriver
) -> None:
    cut = random_bytes(7 * MiB)
    assert await append_body(proxied, cut, 12 * MiB) == len(cut)
    # The part's request was given up mid-body; the bytes went up as a part of their own.
    sent = [r for r in proxy.recorded() if r.operation == "UploadPart"]
    assert [int(r.headers["content-length"]) for r in sent] == [len(cut)]
    rest = random_bytes(6 * MiB)
    assert await append_body(proxied, rest, len(rest)) == len(cut) + len(rest)
    await commit(proxied)
    assert await read_all(proxied, PATH) == cut + rest
    assert uploads(s3_server, bucket) == []


async def test_bytes_before_an_announced_body_come_first(proxied: StorageDriver) -> None:
    # 2 MiB stay pending after the first close; the next body must follow them.
    head, body, extra = random_bytes(2 * MiB), random_bytes(6 * MiB), random_bytes(3 * MiB)
    await append_body(proxied, head, None)
    await append_body(proxied, body, len(body))
    # More than announced: the rest is buffered behind the part.
    await append_body(proxied, body + extra, len(body))
    await commit(proxied)
    assert await read_all(proxied, PATH) == head + body + body + extra


async def test_a_corrupted_part_is_sent_again(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(8 * MiB)
    proxy.fail("UploadPart", "corrupt")
    await append_body(proxied, data, len(data))
    parts = [r for r in proxy.recorded() if r.operation == "UploadPart"]
    assert len(parts) == 2  # the corrupted one's ETag was not the MD5 of the bytes sent
    await commit(proxied)
    assert await read_all(proxied, PATH) == data


async def test_cancel_while_a_part_waits_for_bytes(
    s3_server: S3Server, bucket: str, proxied: StorageDriver
) -> None:
    writer = await proxied.writer(PATH)
    writer.announce(10 * MiB)
    await writer.write(random_bytes(MiB))
    await asyncio.sleep(0.2)  # the part's request is open, waiting for the rest
    started = time.monotonic()
    await writer.cancel()
    assert time.monotonic() - started < 5
    assert uploads(s3_server, bucket) == []


async def test_a_part_that_fails_fails_the_writer(
    s3_server: S3Server, bucket: str, proxy: FaultProxy, proxied: StorageDriver
) -> None:
    kept = random_bytes(6 * MiB)
    await append_body(proxied, kept, len(kept))
    proxy.fail("UploadPart", "drop", times=10)  # more than the retries
    writer = await proxied.writer(PATH, append=True)
    writer.announce(12 * MiB)
    await feed(writer, random_bytes(12 * MiB))
    with pytest.raises(DriverError):
        await writer.close()
    await writer.close()
    proxy.clear()
    # What the failed writer sent is not part of the file; what came before is.
    assert await append_body(proxied, b"", None) == len(kept)
    await commit(proxied)
    assert await read_all(proxied, PATH) == kept
