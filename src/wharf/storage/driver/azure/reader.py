"""The Azure file reader: ranged GETs from an offset, several in flight for large blobs
(``wharf.storage.driver.ranged_reader``, as the S3 reader)."""

from __future__ import annotations

from collections.abc import Awaitable

from wharf.storage.driver.azure.blobs import Blobs
from wharf.storage.driver.azure.client import AzureError, error_status, translate
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

__all__ = ["READ_AHEAD", "READ_BUDGET", "READ_CHUNK", "AzureReader", "ReadBudget", "open_reader"]


async def open_reader(
    blobs: Blobs,
    path: str,
    name: str,
    offset: int,
    *,
    chunk: int = READ_CHUNK,
    ahead: int = READ_AHEAD,
    budget: ReadBudget | None = None,
) -> AzureReader:
    async def head() -> tuple[int, str]:
        info = await blobs.head(name)
        return info.size, info.etag

    first = await first_range(
        path,
        offset,
        lambda: blobs.fetch(name, offset, chunk),
        head,
        store_error=AzureError,
        refused=lambda error: error_status(error) == 416,
        translate=translate,
    )
    return AzureReader(blobs, path, name, first, offset, chunk, ahead, budget or ReadBudget())


class AzureReader(RangedReader):
    store_error = AzureError

    def __init__(
        self,
        blobs: Blobs,
        path: str,
        name: str,
        first: Range,
        offset: int,
        chunk: int,
        ahead: int,
        budget: ReadBudget,
    ) -> None:
        super().__init__(path, first, offset, chunk, ahead, budget)
        self._blobs = blobs
        self._name = name

    def _request(self, offset: int, length: int) -> Awaitable[Range]:
        return self._blobs.fetch(self._name, offset, length, etag=self._etag)

    def _failure(self, error: BaseException) -> DriverError:
        if error_status(error) == 412:
            return self._changed()
        return translate(error, self._path)
