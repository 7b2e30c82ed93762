"""The S3 file reader: ranged GETs from an offset, several in flight for large files
(``wharf.storage.driver.ranged_reader``, as reflow's S3 repository downloads), so a pull is
not held to the speed of one S3 stream.

Measured on loopback with 128 MiB blobs (MB/s, moto / Swift): 8 MiB ranges one ahead
81 / 180, four ahead 79 / 146; 16 MiB four ahead 127 / 292; 32 MiB four ahead 239 / 303.
Both servers pay per request, so fewer, larger ranges win. In benchmark runs against
docker-registry on Swift, two ahead pulled 256 MiB at 1.03x/1.11x of its speed with one
stream and 1.01x/1.05x with four, four ahead at 0.94x/0.95x and 1.06x/1.01x, with more
server CPU per GB: the store's proxy shares the machine, and fewer ranges in flight leave it
more. 16 MiB two ahead keeps a reader's memory at 48 MiB and still keeps three ranges in
flight, which on S3 proper is three connections' worth of throughput per stream.
"""

from __future__ import annotations

from collections.abc import Awaitable

from wharf.storage.driver.base import DriverError
from wharf.storage.driver.ranged_reader import (
    READ_AHEAD,
    READ_BUDGET,
    READ_CHUNK,
    Range,
    RangedReader,
    ReadBudget,
    first_range,
)
from wharf.storage.driver.s3.bucket import Bucket
from wharf.storage.driver.s3.client import S3Error, error_code, error_status, translate

__all__ = ["READ_AHEAD", "READ_BUDGET", "READ_CHUNK", "ReadBudget", "S3Reader", "open_reader"]


def _refused(error: BaseException) -> bool:
    return error_code(error) == "InvalidRange" or error_status(error) == 416


async def open_reader(
    bucket: Bucket,
    path: str,
    key: str,
    offset: int,
    *,
    chunk: int = READ_CHUNK,
    ahead: int = READ_AHEAD,
    budget: ReadBudget | None = None,
) -> S3Reader:
    async def head() -> tuple[int, str]:
        info = await bucket.head(key)
        return info.size, info.etag

    first = await first_range(
        path,
        offset,
        lambda: bucket.fetch(key, offset, chunk),
        head,
        store_error=S3Error,
        refused=_refused,
        translate=translate,
    )
    return S3Reader(bucket, path, key, first, offset, chunk, ahead, budget or ReadBudget())


class S3Reader(RangedReader):
    store_error = S3Error

    def __init__(
        self,
        bucket: Bucket,
        path: str,
        key: str,
        first: Range,
        offset: int,
        chunk: int,
        ahead: int,
        budget: ReadBudget,
    ) -> None:
        super().__init__(path, first, offset, chunk, ahead, budget)
        self._bucket = bucket
        self._key = key

    def _request(self, offset: int, length: int) -> Awaitable[Range]:
        return self._bucket.fetch(self._key, offset, length, if_match=self._etag)

    def _failure(self, error: BaseException) -> DriverError:
        if error_status(error) == 412 or error_code(error) == "PreconditionFailed":
            return self._changed()
        return translate(error, self._path)
