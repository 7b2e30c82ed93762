"""Writers: files as Dynamic Large Objects, one segment per ``chunksize`` bytes.

A segment's upload starts with its first bytes and streams the pieces written as they come
(chunked), so Swift stores a segment while it fills and the last one is nearly stored when
the body ends; up to ``SEGMENTS_IN_FLIGHT`` are unanswered at once (so at most that many
segments of memory per writer). Each piece is copied once and handed to the socket as it is.
Each segment is created with ``If-None-Match: *``, so a writer that is behind another on the
same file fails instead of overwriting a segment (a retried create whose first answer was
lost finds its own bytes there, by MD5; a retry sends the segment again from its first
piece). ``close`` ends the segment being filled, as a shorter one, and writes the manifest if
the file has none yet, as Distribution's writer does: the file is then visible, and any
process continues it (``load_stored`` lists its segments, and looks past the listing for
segments it does not show yet, as listings may lag). ``commit`` checks that the segments under
the file's segments path are exactly those this writer knows (names, sizes, MD5s: bytes
another machine added beside them fail it) and waits until Swift serves the whole size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote

from wharf.storage.driver.base import DriverError, FileWriter, ResumeState
from wharf.storage.driver.swift.client import GrowingBody, SwiftError
from wharf.storage.driver.swift.layout import Layout, segment_name
from wharf.storage.driver.swift.objects import Objects

__all__ = ["Segment", "Stored", "SwiftWriter", "load_stored"]

#: Segments uploaded at once by one writer: its memory is up to one more than this many
#: segments (``chunksize`` each).
SEGMENTS_IN_FLIGHT = 3
#: How long a commit waits for Swift to serve every segment (Distribution: 15 s).
READ_AFTER_WRITE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Segment:
    number: int
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class Stored(ResumeState):
    """The segments of an uncommitted file, as the last writer left them."""

    segments_path: str
    segments: tuple[Segment, ...]

    @property
    def memory_size(self) -> int:
        return 200 + len(self.segments_path) + 100 * len(self.segments)

    @property
    def size(self) -> int:
        return sum(segment.size for segment in self.segments)


def _md5(pieces: tuple[bytes, ...]) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    for piece in pieces:
        md5.update(piece)
    return md5.hexdigest()


def _number(segments_path: str, name: str) -> int | None:
    tail = name[len(segments_path) + 1 :]
    return int(tail) if len(tail) == 16 and tail.isdigit() else None


async def list_segments(
    objects: Objects, segments_path: str, expected_end: int | None = None
) -> list[Segment]:
    """The segments under ``segments_path``, in order; looks past the listing for
    segments it does not show yet (each is written once, so a HEAD is reliable).
    ``expected_end``: the number past the last segment the caller knows of, asked about
    beside the listing (a writer's commit: one round trip fewer when nothing is amiss)."""
    listing = objects.list_all(segments_path + "/")
    if expected_end is None:
        listed, ahead = await listing, None
    else:
        listed, ahead = await asyncio.gather(
            listing, objects.head(segment_name(segments_path, expected_end))
        )
    found = [
        Segment(number, item.size, item.etag)
        for item in listed
        if (number := _number(segments_path, item.name)) is not None
    ]
    known = {segment.number for segment in found}
    following = max(known, default=0) + 1
    while following not in known:
        if following == expected_end:
            head, expected_end = ahead, None
        else:
            head = await objects.head(segment_name(segments_path, following))
        if head is None:
            break
        found.append(Segment(following, head.size, head.etag))
        following += 1
    return sorted(found, key=lambda segment: segment.number)


def manifest_segments(objects: Objects, manifest: str, path: str) -> str:
    """The segments path of an ``X-Object-Manifest`` in this container."""
    container, _, segments = manifest.partition("/")
    if unquote(container) != objects.container:
        raise DriverError(f"segments of {path} are in another container: {manifest}", path=path)
    return unquote(segments)


async def load_stored(objects: Objects, layout: Layout, name: str, path: str) -> Stored | None:
    """What storage holds of the file at ``name``, None when nothing. A plain object
    (written whole) becomes the first segment of a new segments path, with a manifest."""
    head = await objects.head(name, path)
    if head is None:
        return None
    if head.manifest:
        segments_path = manifest_segments(objects, head.manifest, path)
        found = await list_segments(objects, segments_path)
        contiguous = 0
        while contiguous < len(found) and found[contiguous].number == contiguous + 1:
            contiguous += 1
        if contiguous < len(found):
            # Past a gap: segments a writer sent while an earlier one failed. Never part of
            # what the file held, they go before anything is appended.
            stray = [segment_name(segments_path, s.number) for s in found[contiguous:]]
            await objects.delete_all(stray)
        return Stored(segments_path, tuple(found[:contiguous]))
    segments_path = layout.new_segments(path)
    first = Segment(1, head.size, head.etag)
    if not await objects.copy(name, segment_name(segments_path, 1), path):
        return None
    await objects.put(name, b"", manifest=segments_path, path=path)
    return Stored(segments_path, (first,))


class SwiftWriter(FileWriter):
    def __init__(
        self,
        objects: Objects,
        layout: Layout,
        path: str,
        name: str,
        stored: Stored | None,
        chunk_size: int,
    ) -> None:
        self._objects = objects
        self._path = path
        self._name = name
        self._chunk = chunk_size
        if stored is None:
            self._segments_path = layout.new_segments(path)
            self._segments: list[Segment] = []
            self._has_manifest = False
        else:
            self._segments_path = stored.segments_path
            self._segments = list(stored.segments)
            self._has_manifest = True
        self._next = max((s.number for s in self._segments), default=0) + 1
        self._size = sum(segment.size for segment in self._segments)
        self._filling: GrowingBody | None = None  # the segment being written and sent
        self._sending: deque[asyncio.Task[Segment]] = deque()
        self._state = "open"  # -> closed | committed | cancelled
        self._broken = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def segments_path(self) -> str:
        return self._segments_path

    def _check_open(self) -> None:
        if self._state != "open":
            raise DriverError(f"writer already {self._state}: {self._path}", path=self._path)
        if self._broken:
            raise DriverError(f"writer failed earlier: {self._path}", path=self._path)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        view = memoryview(data).cast("B")
        self._size += view.nbytes
        position = 0
        while position < view.nbytes:
            segment = self._filling or await self._start_segment()
            step = min(view.nbytes - position, self._chunk - segment.size)
            segment.append(bytes(view[position : position + step]))
            position += step
            if segment.size == self._chunk:
                segment.end()
                self._filling = None

    async def _start_segment(self) -> GrowingBody:
        """Start uploading the next segment, once fewer than ``SEGMENTS_IN_FLIGHT`` are
        unanswered; its bytes follow as they are written."""
        while len(self._sending) >= SEGMENTS_IN_FLIGHT:
            await self._settle_oldest()
        number = self._next
        self._next += 1
        segment = self._filling = GrowingBody()
        self._sending.append(asyncio.get_running_loop().create_task(self._put(number, segment)))
        return segment

    async def _settle_oldest(self) -> None:
        sending = self._sending.popleft()
        try:
            self._segments.append(await sending)
        except BaseException:
            self._broken = True
            raise

    async def _settle(self) -> None:
        """Until every segment in flight is stored, in order."""
        while self._sending:
            await self._settle_oldest()

    async def _put(self, number: int, body: GrowingBody) -> Segment:
        name = segment_name(self._segments_path, number)
        try:
            etag = await self._objects.put(name, body, if_none_match=True, path=self._path)
        except SwiftError as exc:
            if exc.status != 412:
                raise
            # There already: ours, when an earlier attempt's answer was lost.
            pieces = await body.whole()
            head = await self._objects.head(name, self._path)
            md5 = await asyncio.to_thread(_md5, pieces)
            if head is None or head.etag != md5:
                raise DriverError(
                    f"another writer wrote segment {number} of {self._path}", path=self._path
                ) from exc
            etag = head.etag
        await body.whole()
        return Segment(number, body.size, etag)

    async def _flush(self) -> None:
        try:
            if self._filling is not None:
                self._filling.end()
                self._filling = None
            await self._settle()
            if not self._has_manifest:
                await self._objects.put(
                    self._name, b"", manifest=self._segments_path, path=self._path
                )
                self._has_manifest = True
        except BaseException:
            self._broken = True
            raise

    async def close(self) -> None:
        if self._state != "open":
            return
        try:
            if not self._broken:
                await self._flush()
        finally:
            self._state = "closed"
            await self._abandon()

    async def _abandon(self) -> None:
        while self._sending:
            sending = self._sending.popleft()
            sending.cancel()
            with contextlib.suppress(BaseException):
                await sending

    async def commit(self) -> None:
        self._check_open()
        await self._flush()
        stored, served = await asyncio.gather(
            list_segments(self._objects, self._segments_path, self._next), self._served()
        )
        if [(s.number, s.size) for s in stored] != [
            (s.number, s.size) for s in self._segments
        ] or any(
            known.etag and found.etag != known.etag
            for known, found in zip(self._segments, stored, strict=True)
        ):
            self._broken = True
            raise DriverError(f"segments of {self._path} changed under its writer", path=self._path)
        if not served:
            await self._wait_until_served()
        self._state = "committed"

    @property
    def served_size(self) -> int | None:
        return self._size if self._state == "committed" else None

    async def _served(self) -> bool:
        """Whether Swift serves the whole size (asked beside the segments' listing)."""
        head = await self._objects.head(self._name, self._path)
        return head is not None and head.size == self._size

    async def _wait_until_served(self) -> None:
        """Until Swift serves the whole size: its listings, which DLOs read, may lag."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_AFTER_WRITE_TIMEOUT
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            delay *= 2
            head = await self._objects.head(self._name, self._path)
            if head is not None and head.size == self._size:
                return
            if loop.time() + delay > deadline:
                self._broken = True
                raise DriverError(
                    f"{self._path}: Swift serves {head.size if head else 'nothing'} of "
                    f"{self._size} bytes after {READ_AFTER_WRITE_TIMEOUT:.0f} s",
                    path=self._path,
                )

    async def cancel(self) -> None:
        if self._state == "committed":
            raise DriverError(f"writer already committed: {self._path}", path=self._path)
        if self._state == "cancelled":
            return
        self._state = "cancelled"
        await self._abandon()
        self._filling = None
        await self._objects.delete(self._name, self._path)
        names = [item.name for item in await self._objects.list_all(self._segments_path + "/")]
        await self._objects.delete_all(names)

    def resume_state(self) -> ResumeState | None:
        if self._state != "closed" or self._broken:
            return None
        return Stored(self._segments_path, tuple(self._segments))
