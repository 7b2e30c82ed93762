"""The GCS file writer: the bytes go up as part objects beside the file, composed at commit.

What storage holds for an uncommitted file at ``name``: part objects
``<name>#part.<generation>.<offset>`` (``layout``), each a piece of the file starting at that
offset, uploaded by a writer of that generation. Any process continues the file from a
listing of ``<name>#part.`` alone: the file is the chain of parts from offset 0, each starting
where the one before ends, whose generations never decrease, taking at each offset the
newest. Every writer uploads under a generation of its own, greater than any it found, so a
part whose upload failed while later ones landed, or parts left by a writer that was killed,
end the chain or stay off it: the next writer finds a consistent prefix of what was
written, never a hole, never bytes twice. Uploading a part again under its name replaces
it, so a retried upload is safe.

Writing: bytes are buffered (as the pieces written, see ``piece_buffer``); each
``chunksize`` becomes a part uploaded in the background, up to ``PARALLEL_PARTS`` at a time
(the next write waits for a free slot, which bounds memory). ``close`` uploads the rest as
one more part, whatever its size: one request. ``commit`` uploads the rest and composes the
chain into ``name`` (GCS composes up to 32 objects per call, so longer chains go through
intermediate objects), then deletes the parts it composed and its intermediates; a file that
never needed a part is uploaded in one request. Parts another writer left (one that died, or
one writing the same file at the same time, which stays independent: ``write_in_place``) are
older than the committed file, which is all a later writer continues; purging deletes them.
``cancel`` deletes the chain it continued and its own parts. A committed file being
continued (``append=True``) is first composed into the chain's part at offset 0,
server-side, without moving its bytes.

Why parts and not a resumable upload session (Distribution's way): a session takes only
multiples of 256 KiB until its last request, so each request's tail must be kept elsewhere
(Distribution keeps it, visibly, at the file's own name); a session cannot be read, listed,
or found again without its URI, so nothing purges what a dead process left but the 7-day
expiry; and its bytes are the store's alone until finalised, where parts are ordinary objects
any instance lists, sizes and deletes. See the package docstring for the measurements.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from wharf.storage.driver.base import FileWriter, ResumeState
from wharf.storage.driver.gcs.client import GCSError, translate
from wharf.storage.driver.gcs.layout import KeyLayout, parse_part
from wharf.storage.driver.gcs.objects import ObjectInfo, Objects
from wharf.storage.driver.piece_buffer import PieceBuffer
from wharf.storage.driver.writer_steps import WriterSteps

__all__ = ["COMPOSE_LIMIT", "PARALLEL_PARTS", "GCSWriter", "Stored", "chain", "load_stored"]

#: Parts in flight per writer; each holds one ``chunksize`` of memory.
PARALLEL_PARTS = 4
#: Sources of one compose call (GCS's limit).
COMPOSE_LIMIT = 32
_Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class Stored(ResumeState):
    """What storage holds for one uncommitted (or committed, being continued) file."""

    parts: list[ObjectInfo] = field(default_factory=list)  # the chain, in offset order
    newest: int = 0  # the greatest generation of a part found
    base: ObjectInfo | None = None  # a committed file being continued

    @property
    def size(self) -> int:
        if self.base is not None:
            return self.base.size
        return sum(part.size for part in self.parts)

    @property
    def memory_size(self) -> int:
        return 256 + 160 * len(self.parts)


def chain(parts: Sequence[ObjectInfo], key: str) -> Stored:
    """The file the part objects of ``key`` form (see the module docstring)."""
    at: dict[int, list[tuple[int, ObjectInfo]]] = {}
    newest = 0
    for part in parts:
        parsed = parse_part(part.name[len(key) :])
        if parsed is None or not part.size:
            continue
        generation, offset = parsed
        newest = max(newest, generation)
        at.setdefault(offset, []).append((generation, part))
    stored, position, floor = Stored(newest=newest), 0, 0
    while candidates := [c for c in at.get(position, []) if c[0] >= floor]:
        floor, part = max(candidates, key=lambda c: c[0])
        stored.parts.append(part)
        position += part.size
    return stored


async def _committed(objects: Objects, key: str) -> ObjectInfo | None:
    try:
        return await objects.head(key)
    except GCSError as exc:
        if exc.status == 404:
            return None
        raise


async def load_stored(objects: Objects, key: str) -> Stored | None:
    """The stored state of ``key``, or None when nothing is there to continue. Parts older
    than the committed file are another writer's leftovers (a commit deletes only the parts
    it composed): the file continues from what was committed after them."""
    parts, base = await asyncio.gather(
        objects.list_all(KeyLayout.parts_prefix(key)), _committed(objects, key)
    )
    if base is not None and base.modified is not None:
        # Not older: a part written in the same tick as the file (GCS stamps milliseconds)
        # is kept, as only a writer continuing the file writes then.
        parts = [p for p in parts if p.modified is None or p.modified >= base.modified]
    stored = chain(parts, key)
    if stored.parts:
        return stored
    if base is None:
        return None
    stored.base = base
    return stored


def _generation(newest: int) -> int:
    # Above every generation found; the low bits keep two fresh writers apart.
    return ((newest >> 16) + 1) << 16 | random.getrandbits(16)


class GCSWriter(WriterSteps, FileWriter):
    store_error = GCSError
    translate = translate

    def __init__(
        self, objects: Objects, path: str, key: str, stored: Stored | None, chunk_size: int
    ) -> None:
        self._objects = objects
        self._path = path
        self._key = key
        self._chunk_size = chunk_size
        self._fresh = stored is None  # append=False: the generation is chosen when needed
        stored = stored or Stored()
        self._generation = 0 if self._fresh else _generation(stored.newest)
        self._parts = list(stored.parts)
        self._base = stored.base if stored.base is not None and stored.base.size else None
        self._sent = stored.size  # bytes handed to parts (or in the base)
        self._size = stored.size
        self._buffer = PieceBuffer()  # bytes not yet in a part
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(PARALLEL_PARTS)
        self._error: BaseException | None = None
        self._state = "open"

    @property
    def size(self) -> int:
        return self._size

    # -- the contract -----------------------------------------------------------------------

    async def write(self, data: _Buffer) -> None:
        self._check("open")
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        with self._errors():
            self._raise_failure()  # a part sent in the background failed
            self._buffer.append(view)  # a copy: the caller may reuse its buffer
            self._size += view.nbytes
            while len(self._buffer) >= self._chunk_size:
                await self._send(self._chunk_size)

    async def close(self) -> None:
        if self._state == "failed":
            # Raised to the caller already; storage keeps a consistent prefix.
            self._state = "abandoned"
            await self._wait_uploads()
            return
        if self._state != "open":
            return
        with self._errors():
            await self._flush()
        self._state = "closed"

    async def commit(self) -> None:
        self._check("open")
        with self._errors():
            if self._fresh and not self._parts and not self._tasks:
                # Nothing uploaded yet: the file in one request.
                data = self._buffer.take(len(self._buffer))
                await self._objects.put(self._key, data)
            elif self._base is not None and not self._buffer and not self._tasks:
                pass  # the committed file is the file
            else:
                await self._flush()
                intermediates = await self._compose()
                await self._delete([p.name for p in self._parts] + intermediates)
        self._state = "committed"

    def resume_state(self) -> Stored | None:
        """What storage holds once this writer closed, for ``GCSDriver.resume_writer`` to
        continue without listing the parts again."""
        if self._state != "closed" or self._base is not None:
            return None
        return Stored(list(self._parts), newest=self._generation)

    async def cancel(self) -> None:
        self._check("open", "failed")
        self._state = "cancelled"
        for task in self._tasks:
            task.cancel()
        await self._wait_uploads()
        self._buffer.clear()
        with self._errors():
            # The chain it continued, and its own parts (some may have landed unrecorded).
            found = await self._objects.list_all(KeyLayout.parts_prefix(self._key))
            own = [
                p.name for p in found
                if (parse_part(p.name[len(self._key) :]) or (0, 0))[0] == self._generation
            ]  # fmt: skip
            await self._delete(sorted({p.name for p in self._parts} | set(own)))

    # -- steps ------------------------------------------------------------------------------

    async def _flush(self) -> None:
        self._raise_failure()
        if self._buffer:
            await self._send(len(self._buffer))
        elif self._base is not None:
            await self._prepare()  # the chain holds the base from now on
        if self._tasks:
            await self._wait_uploads()
        self._raise_failure()
        # Parts land in any order; the chain is in offset order.
        self._parts.sort(key=lambda part: (parse_part(part.name[len(self._key) :]) or (0, 0))[1])

    async def _send(self, size: int) -> None:
        data = self._buffer.take(size)
        await self._prepare()
        await self._take_slot()
        name = KeyLayout.part(self._key, self._generation, self._sent)
        self._sent += len(data)
        self._in_background(self._upload(name, data))

    async def _upload(self, name: str, data: bytes) -> None:
        try:
            self._parts.append(await self._objects.put(name, data))
        except BaseException as exc:
            # Later parts may still land: the next writer's chain stops at this one.
            # Kept, not raised: the writer reports it from its next call.
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()

    async def _prepare(self) -> None:
        """Before the first part: a generation above every part found, and a committed
        file being continued composed into the chain's first part."""
        if self._fresh:
            self._fresh = False
            found = await self._objects.list_all(KeyLayout.parts_prefix(self._key))
            self._generation = _generation(chain(found, self._key).newest)
        if self._base is None:
            return
        base, self._base = self._base, None
        first = KeyLayout.part(self._key, self._generation, 0)
        self._parts.insert(0, await self._objects.compose(first, [base]))

    async def _compose(self) -> list[str]:
        """Compose the chain into the file; the intermediate objects it made."""
        sources = list(self._parts)
        if not sources:
            await self._objects.put(self._key, b"")
            return []
        made: list[str] = []
        while len(sources) > COMPOSE_LIMIT:
            groups = [sources[i : i + COMPOSE_LIMIT] for i in range(0, len(sources), COMPOSE_LIMIT)]
            names = [
                KeyLayout.compose(self._key, self._generation, len(made) + i)
                for i in range(len(groups))
            ]
            made += names
            sources = list(
                await asyncio.gather(
                    *(self._objects.compose(n, g) for n, g in zip(names, groups, strict=True))
                )
            )
        await self._objects.compose(self._key, sources)
        return made

    async def _delete(self, names: Sequence[str]) -> None:
        await asyncio.gather(*(self._objects.delete(name) for name in names))
