"""The Azure file writer: blocks staged on the file's own block blob, committed once.

What storage holds for an uncommitted file at ``name``: blocks staged on that blob and not
committed, each named by its writer's generation and the file offset of its first byte
(``layout.block_id``). Azure keeps staged blocks invisible (the blob does not exist until a
commit), for up to 7 days, and lists them with GetBlockList, so any process can continue the
file from storage alone. Every writer stages under a generation of its own, greater than any
it found on the blob; the file is the chain of blocks from offset 0, each starting where the
one before ends, whose generations never decrease, taking at each offset the newest. A block
whose upload failed while later ones succeeded, or blocks left by a writer that was killed,
thus end the chain or stay off it: the next writer finds a consistent prefix of what was
written, never a hole, never bytes twice, and its own blocks supersede the leftovers. Staging
a block again under the same id replaces it, so a retried PutBlock is safe.

Writing: bytes are buffered (as the pieces written, see ``piece_buffer``); each
``block_size`` becomes a block staged in the background, up to ``PARALLEL_BLOCKS`` at a time
(the next write waits for a free slot, which bounds memory). ``close`` stages the rest as
one more block: one request, no copy, whatever the chunk sizes. ``commit`` stages the rest
and commits the chain (PutBlockList), which also discards every other staged block; a file
with no block is put empty. ``cancel`` discards the staged blocks where nothing committed is
there (Azure drops them after 7 days where something is).

Continuing a committed file (``append=True`` on a file that exists) first stages its bytes as
the new chain's first blocks, read back in ranges. A committed *append* blob, which is how
Distribution keeps an upload in progress, is continued as one: AppendBlock at the expected
position (a retry whose first attempt landed finds the blob already that long), with
nothing to commit.

Azure allows 50,000 committed blocks per blob: a file of 8 MiB blocks up to 390 GiB, less
one block per request that ended off a block boundary.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from wharf.storage.driver.azure.blobs import Blobs, ObjectInfo
from wharf.storage.driver.azure.client import AzureError, error_status, is_retryable, translate
from wharf.storage.driver.azure.layout import block_id, parse_block_id
from wharf.storage.driver.base import FileWriter, ResumeState
from wharf.storage.driver.piece_buffer import PieceBuffer
from wharf.storage.driver.writer_steps import WriterSteps

__all__ = ["APPEND_LIMIT", "BLOCK_SIZE", "PARALLEL_BLOCKS", "AzureWriter", "Stored", "load_stored"]

#: Bytes per staged block. Measured against Azurite, 256 MiB pushed through wharf, 4 in flight,
#: each run 7 rounds beside the SDK's own upload: 4 MiB blocks 0.76-0.81x of the SDK and 0.72
#: CPU-s of wharf per push, 8 MiB 0.85-0.98x and 0.64 CPU-s (Azurite takes one core, so what
#: wharf spends on the other counts). Before each block was copied once only, 4 MiB won (195
#: MB/s, 8 MiB 155) and 16 MiB blocks were slow there (43-64 MB/s).
BLOCK_SIZE = 8 << 20
#: Blocks in flight per writer; each holds one block of memory.
PARALLEL_BLOCKS = 4
#: Bytes per AppendBlock (Azurite's limit; Azure takes up to 100 MiB).
APPEND_LIMIT = 4 << 20
_Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class Stored(ResumeState):
    """What storage holds for one uncommitted (or committed, being continued) file."""

    blocks: list[tuple[str, int]] = field(default_factory=list)  # the chain: (id, size)
    newest: int = 0  # the greatest generation staged on the blob
    base: ObjectInfo | None = None  # a committed blob being continued

    @property
    def size(self) -> int:
        if self.base is not None:
            return self.base.size
        return sum(size for _, size in self.blocks)

    @property
    def memory_size(self) -> int:
        return 256 + 96 * len(self.blocks)


def chain(staged: list[tuple[str, int]]) -> Stored:
    """The file the staged blocks form (see the module docstring)."""
    at: dict[int, list[tuple[int, str, int]]] = {}
    newest = 0
    for block, size in staged:
        parsed = parse_block_id(block)
        if parsed is None or not size:
            continue
        generation, offset = parsed
        newest = max(newest, generation)
        at.setdefault(offset, []).append((generation, block, size))
    stored, position, floor = Stored(newest=newest), 0, 0
    while candidates := [c for c in at.get(position, []) if c[0] >= floor]:
        floor, block, size = max(candidates)
        stored.blocks.append((block, size))
        position += size
    return stored


async def load_stored(blobs: Blobs, name: str) -> Stored | None:
    """The stored state of ``name``, or None when nothing is there to continue."""
    staged = await blobs.staged(name)
    stored = chain(staged)
    if stored.blocks:
        return stored
    try:
        stored.base = await blobs.head(name)
    except AzureError as exc:
        if error_status(exc) == 404:
            return None
        raise
    return stored


def _generation(newest: int) -> int:
    # Above every generation found; the low bits keep two fresh writers apart.
    return ((newest >> 16) + 1) << 16 | random.getrandbits(16)


class AzureWriter(WriterSteps, FileWriter):
    store_error = AzureError
    translate = translate
    upload_unit = "block"

    def __init__(
        self, blobs: Blobs, path: str, name: str, stored: Stored | None, block_size: int
    ) -> None:
        self._blobs = blobs
        self._path = path
        self._name = name
        self._block_size = block_size
        self._fresh = stored is None  # append=False: the generation is chosen when needed
        stored = stored or Stored()
        self._generation = 0 if self._fresh else _generation(stored.newest)
        self._blocks = list(stored.blocks)
        self._base = stored.base if stored.base is not None and stored.base.size else None
        self._appending = self._base is not None and self._base.kind == "AppendBlob"
        self._staged = sum(size for _, size in self._blocks)  # bytes handed to blocks
        self._size = stored.size
        self._buffer = PieceBuffer()  # the next block
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(PARALLEL_BLOCKS)
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
            self._raise_failure()  # a block sent in the background failed
            self._size += view.nbytes
            limit = APPEND_LIMIT if self._appending else self._block_size
            self._buffer.append(view)  # a copy: the caller may reuse its buffer
            while len(self._buffer) >= limit:
                await self._send(limit)

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
            await self._flush()
            if self._appending or (self._base is not None and not self._blocks):
                pass  # the committed blob is the file
            elif not self._blocks:
                await self._blobs.put(self._name, b"")
            else:
                await self._blobs.commit(self._name, [block for block, _ in self._blocks])
        self._state = "committed"

    def resume_state(self) -> Stored | None:
        """What storage holds once this writer closed, for ``AzureDriver.resume_writer`` to
        continue without listing the blocks again."""
        if self._state != "closed" or self._appending or self._base is not None:
            return None
        return Stored(list(self._blocks), newest=self._generation)

    async def cancel(self) -> None:
        self._check("open", "failed")
        self._state = "cancelled"
        for task in self._tasks:
            task.cancel()
        await self._wait_uploads()
        self._buffer.clear()
        with self._errors():
            await self._blobs.discard_staged(self._name)

    # -- steps ------------------------------------------------------------------------------

    async def _flush(self) -> None:
        self._raise_failure()
        if self._buffer:
            await self._send(len(self._buffer))
        if self._tasks:
            await self._wait_uploads()
        self._raise_failure()
        # Blocks land in any order; the chain is in offset order.
        self._blocks.sort(key=lambda block: (parse_block_id(block[0]) or (0, 0))[1])

    async def _send(self, size: int) -> None:
        data = self._buffer.take(size)
        if self._appending:
            await self._append(data)
            return
        await self._prepare()
        await self._take_slot()
        block = block_id(self._generation, self._staged)
        self._staged += len(data)
        self._in_background(self._stage(block, data))

    async def _stage(self, block: str, data: bytes) -> None:
        try:
            await self._blobs.stage(self._name, block, data)
            self._blocks.append((block, len(data)))
        except BaseException as exc:
            # Later blocks may still land: the next writer's chain stops at this one.
            # Kept, not raised: the writer reports it from its next call.
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()

    async def _prepare(self) -> None:
        """Before the first block: a generation above every staged one, and a committed
        blob being continued staged as the chain's first blocks."""
        if self._fresh:
            self._fresh = False
            self._generation = _generation(chain(await self._blobs.staged(self._name)).newest)
        if self._base is None:
            return
        base, self._base = self._base, None
        for start in range(0, base.size, self._block_size):
            fetched = await self._blobs.fetch(base.name, start, self._block_size, etag=base.etag)
            block = block_id(self._generation, start)
            await self._blobs.stage(self._name, block, fetched.data)
            self._blocks.append((block, len(fetched.data)))
        self._staged = base.size

    async def _append(self, data: bytes) -> None:
        assert self._base is not None
        position = self._base.size
        blob = self._blobs.blob(self._name)
        client = self._blobs.client

        def append() -> None:
            blob.append_block(data, length=len(data), appendpos_condition=position)

        for attempt in range(client.retry.attempts):
            try:
                await client.call("AppendBlock", append, idempotent=False)
                break
            except AzureError as exc:
                # After a lost answer: landed when the blob is already that long.
                if attempt and error_status(exc) == 412:
                    if (await self._blobs.head(self._name)).size == position + len(data):
                        break
                    raise
                if not is_retryable(exc) or attempt + 1 >= client.retry.attempts:
                    raise
                await asyncio.sleep(client.retry.delay(attempt))
        self._base = ObjectInfo(self._name, position + len(data), None, kind="AppendBlob")
