"""Fetching a blob the cache does not hold: once, verified, streamed to the client meanwhile.

A fetch runs as a task of its own, under the claim of an upload session named after the
repository and the digest (``Uploads.claimed``): so one request in one process of one
instance fetches a blob, whichever requests ask for it at once; the others wait for it to be
stored and are served from storage. The bytes go through the upload machinery
(``Uploads.store_fetched``): hashed as they arrive, committed only once they match the digest,
then linked. Whoever started the fetch reads the bytes as they pass (``Tee``), without waiting
for the whole blob; if the client leaves, the fetch goes on for ``cache_write_timeout``, so
the next client finds the blob stored.

An upstream that dies mid-blob, or sends bytes that do not match the digest, leaves nothing
stored: the reader gets the error (the client sees its download cut short) and the next
request fetches again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from wharf.errors import Unavailable
from wharf.reference import RepositoryName
from wharf.storage.driver import FileReader

__all__ = ["Fetches", "Tee", "fetch_id"]

log = logging.getLogger("wharf.proxy")

_NAMESPACE = uuid.UUID("6f4f5c1e-3b8e-4a8a-9c07-5d1b2f0e9a11")
#: Bytes a fetch runs ahead of a slow client before it waits for it.
_AHEAD = 8 << 20
#: How long a request waits for another's fetch before it gives up with 503.
WAIT_LIMIT = 600.0
_POLL_FIRST, _POLL_MAX = 0.05, 1.0


def fetch_id(repository: RepositoryName, what: str) -> str:
    """The upload session a fetch of ``what`` into ``repository`` runs under: the same in
    every process."""
    return str(uuid.uuid5(_NAMESPACE, f"{repository.value}@{what}"))


class Tee(FileReader):
    """The bytes of a fetch as it stores them, for the client that started it."""

    def __init__(self) -> None:
        self._pieces: deque[bytes] = deque()
        self._held = 0
        self._done = False
        self._error: BaseException | None = None
        self._closed = False
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        #: Once the fetch is over and this tee is not the way to read it (another process
        #: fetched): where the client reads from instead.
        self.then: Callable[[], Awaitable[FileReader]] | None = None
        self._then_reader: FileReader | None = None

    # -- the fetch's side ------------------------------------------------------------------

    async def pass_on(self, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for piece in pieces:
            if not self._closed:
                while self._held >= _AHEAD and not self._closed:
                    self._room.clear()
                    await self._room.wait()
                if not self._closed:
                    self._pieces.append(piece)
                    self._held += len(piece)
                    self._readable.set()
            yield piece

    def finish(self, error: BaseException | None = None) -> None:
        self._done, self._error = True, error
        self._readable.set()

    @property
    def abandoned(self) -> bool:
        return self._closed

    # -- the client's side -----------------------------------------------------------------

    async def read(self, size: int) -> bytes:
        if self._then_reader is not None:
            return await self._then_reader.read(size)
        while not self._pieces:
            if self._done:
                if self._error is not None:
                    raise self._error
                if self.then is not None:
                    self._then_reader = await self.then()
                    return await self._then_reader.read(size)
                return b""
            self._readable.clear()
            await self._readable.wait()
        piece = self._pieces.popleft()
        if len(piece) > size:
            self._pieces.appendleft(piece[size:])
            piece = piece[:size]
        self._held -= len(piece)
        self._room.set()
        return piece

    async def close(self) -> None:
        self._closed = True
        self._pieces.clear()
        self._room.set()
        if self._then_reader is not None:
            await self._then_reader.close()


class Fetches:
    """The fetches this process runs, so that one running here is joined rather than
    claimed again."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[None]] = {}

    def running(self, key: str) -> asyncio.Task[None] | None:
        task = self._running.get(key)
        return None if task is None or task.done() else task

    def start(self, key: str, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._running[key] = task
        task.add_done_callback(lambda done: self._done(key, done))
        return task

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled() and task.exception() is not None:
            log.debug("fetch %s failed: %s", key, task.exception())

    async def aclose(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(present: Callable[[], Awaitable[bool]], limit: float = WAIT_LIMIT) -> None:
    """Poll ``present`` with a growing pause until it holds; Unavailable after ``limit``."""
    pause, waited = _POLL_FIRST, 0.0
    while not await present():
        if waited >= limit:
            raise Unavailable(message="another request's fetch from the upstream takes too long")
        await asyncio.sleep(pause)
        waited += pause
        pause = min(pause * 2, _POLL_MAX)
