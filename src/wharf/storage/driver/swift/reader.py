"""Streaming readers: one ranged GET, reopened where it stopped when a connection drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from wharf.storage.driver.base import FileReader, InvalidOffset, PathNotFound
from wharf.storage.driver.swift.client import SwiftError
from wharf.storage.driver.swift.objects import Objects

__all__ = ["SwiftReader", "open_reader"]


class SwiftReader(FileReader):
    def __init__(self, objects: Objects, name: str, path: str, offset: int) -> None:
        self._objects = objects
        self._name = name
        self._path = path
        self._offset = offset
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._pending = b""
        self._end = False
        self._failures = 0

    async def open(self) -> None:
        """GET from the current offset; PathNotFound, InvalidOffset past the end."""
        headers = {"Range": f"bytes={self._offset}-"} if self._offset else {}
        client = self._objects.client
        response = await client.stream(
            "GET", self._objects.container, self._name, headers=headers, path=self._path,
            ok=(404, 416),
        )  # fmt: skip
        if response.status_code == 404:
            await response.aclose()
            raise PathNotFound(self._path)
        if response.status_code == 416:
            await response.aclose()
            head = await self._objects.head(self._name, self._path)
            if head is None:
                raise PathNotFound(self._path)
            if self._offset != head.size:
                raise InvalidOffset(self._path, self._offset)
            self._end = True
            return
        self._response = response
        self._chunks = response.aiter_raw()

    async def read(self, size: int) -> bytes:
        while not self._pending and not self._end:
            if self._chunks is None:
                await self.open()
                continue
            try:
                self._pending = await anext(self._chunks, b"")
            except httpx.HTTPError as exc:
                await self._drop()
                self._failures += 1
                retry = self._objects.client.retry
                if self._failures >= retry.attempts:
                    raise SwiftError(f"GET {self._name}: {exc!r}", path=self._path) from exc
                await asyncio.sleep(retry.delay(self._failures - 1))
                continue
            if not self._pending:
                self._end = True
                await self._drop()
        data, self._pending = self._pending[:size], self._pending[size:]
        self._offset += len(data)
        return data

    async def _drop(self) -> None:
        response, self._response, self._chunks = self._response, None, None
        if response is not None:
            await response.aclose()

    async def close(self) -> None:
        self._end = True
        self._pending = b""
        await self._drop()


async def open_reader(objects: Objects, name: str, path: str, offset: int) -> SwiftReader:
    if offset < 0:
        raise InvalidOffset(path, offset)
    reader = SwiftReader(objects, name, path, offset)
    await reader.open()
    return reader
