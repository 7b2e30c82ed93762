"""Hashing and writing an upload body as it arrives.

The body is copied into a few reusable batch buffers. A full batch goes to a
hashing thread and to the driver's writer concurrently, and its buffer returns to the ring
when both are done, so neither the event loop nor the client waits for the other and memory
stays bounded. Reusing the buffers matters more than it seems: a fresh megabyte per batch
costs a page fault per page (and on VMs a host fault too), which the kernel's copies out of
and into it then pay for. Measured on a 2-core VM, pushing 256 MiB: 2.7-4.5 server CPU s/GB
with a fresh ``bytes`` per batch, 1.5-1.9 with the ring. The buffers are anonymous mappings,
so page-aligned, which lets the filesystem driver write whole batches to the disk directly.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import AsyncIterator
from concurrent.futures import Executor

from wharf.hashing import Hasher
from wharf.storage.driver import FileWriter

__all__ = ["BATCH_SIZE", "PIPELINE_DEPTH", "pump"]

#: Bytes gathered from the request before a batch is hashed and written.
BATCH_SIZE = 1 << 20
#: Batches in flight between receiving and hashing/writing.
PIPELINE_DEPTH = 4
#: Idle batch buffers a process keeps for the next upload.
_POOL_KEEP = 2 * PIPELINE_DEPTH
_pool: list[memoryview] = []


def _new_buffer() -> memoryview:
    # Page-aligned, and untouched pages of an anonymous mapping cost nothing: a small body
    # only ever touches the pages it fills.
    return _pool.pop() if _pool else memoryview(mmap.mmap(-1, BATCH_SIZE))


class _Ring:
    """At most ``PIPELINE_DEPTH`` buffers, each held by the consumers of its batch."""

    def __init__(self, holders: int) -> None:
        self.holders = holders
        self.free: asyncio.Queue[memoryview] = asyncio.Queue()
        self.buffers: list[memoryview] = []
        self.holds: dict[int, int] = {}

    async def take(self) -> memoryview:
        if self.free.empty() and len(self.buffers) < PIPELINE_DEPTH:
            self.buffers.append(_new_buffer())
            return self.buffers[-1]
        return await self.free.get()

    def hold(self, buffer: memoryview) -> None:
        self.holds[id(buffer)] = self.holders

    def release(self, buffer: memoryview) -> None:
        key = id(buffer)
        self.holds[key] -= 1
        if not self.holds[key]:
            self.free.put_nowait(buffer)

    def recycle(self) -> None:
        """Give the buffers to the next upload; only once no thread can still read them."""
        while self.buffers and len(_pool) < _POOL_KEEP:
            _pool.append(self.buffers.pop())


async def pump(
    body: AsyncIterator[bytes], writer: FileWriter, hasher: Hasher | None, executor: Executor
) -> int:
    """Hash and write ``body`` in batches; returns the bytes received."""
    loop = asyncio.get_running_loop()
    ring = _Ring(2 if hasher is not None else 1)
    hash_queue: asyncio.Queue[tuple[memoryview, int] | None] = asyncio.Queue()
    write_queue: asyncio.Queue[tuple[memoryview, int] | None] = asyncio.Queue()
    received = 0

    async def hash_batches() -> None:
        assert hasher is not None
        while (batch := await hash_queue.get()) is not None:
            buffer, size = batch
            await loop.run_in_executor(executor, hasher.update, buffer[:size])
            ring.release(buffer)

    async def write_batches() -> None:
        while (batch := await write_queue.get()) is not None:
            buffer, size = batch
            # Writers copy what they keep past ``write``: the buffer is free once it returns.
            await writer.write(buffer[:size])
            ring.release(buffer)

    def dispatch(batch: tuple[memoryview, int] | None) -> None:
        if batch is not None:
            ring.hold(batch[0])
        if hasher is not None:
            hash_queue.put_nowait(batch)
        write_queue.put_nowait(batch)

    async def produce() -> None:
        # On failure the task group cancels the consumers: no end marker is needed then.
        nonlocal received
        buffer, filled = await ring.take(), 0
        async for chunk in body:
            view = memoryview(chunk)
            size, position = len(view), 0
            received += size
            while position < size:
                step = min(size - position, BATCH_SIZE - filled)
                buffer[filled : filled + step] = view[position : position + step]
                filled += step
                position += step
                if filled == BATCH_SIZE:
                    dispatch((buffer, filled))
                    buffer, filled = await ring.take(), 0
        if filled:
            dispatch((buffer, filled))
        else:
            ring.free.put_nowait(buffer)
        dispatch(None)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            if hasher is not None:
                group.create_task(hash_batches())
            group.create_task(write_batches())
    except BaseExceptionGroup as failure:
        # One step failed and the others were cancelled: what the caller must see is the
        # failure itself (a stalled or vanished client, a storage error), not the group.
        # A cancelled thread may still read a buffer: those buffers are not reused.
        raise failure.exceptions[0] from None
    ring.recycle()
    return received
