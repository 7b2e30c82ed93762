"""Hashing and writing an upload body as it arrives.

Batches go to a hashing thread and to the driver's writer concurrently, with a bounded number
of batches in flight, so neither the event loop nor the client waits for the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor

from wharf.hashing import Hasher
from wharf.storage.driver import FileWriter

__all__ = ["BATCH_SIZE", "PIPELINE_DEPTH", "pump"]

#: Bytes gathered from the request before a batch is hashed and written.
BATCH_SIZE = 1 << 20
#: Batches in flight between receiving and hashing/writing.
PIPELINE_DEPTH = 4


async def pump(
    body: AsyncIterator[bytes], writer: FileWriter, hasher: Hasher | None, executor: Executor
) -> int:
    """Hash and write ``body`` in batches; returns the bytes received."""
    loop = asyncio.get_running_loop()
    hash_queue: asyncio.Queue[bytes | None] = asyncio.Queue(PIPELINE_DEPTH)
    write_queue: asyncio.Queue[bytes | None] = asyncio.Queue(PIPELINE_DEPTH)
    received = 0

    async def consume(queue: asyncio.Queue[bytes | None], step: Callable[[bytes], object]) -> None:
        while (batch := await queue.get()) is not None:
            result = step(batch)
            if asyncio.isfuture(result) or asyncio.iscoroutine(result):
                await result

    def hash_step(batch: bytes) -> asyncio.Future[None] | None:
        if hasher is None:
            return None
        return loop.run_in_executor(executor, hasher.update, batch)

    async def produce() -> None:
        # On failure the task group cancels the consumers: no end marker is needed then.
        nonlocal received
        parts: list[bytes] = []
        pending = 0
        async for chunk in body:
            if not chunk:
                continue
            parts.append(chunk)
            pending += len(chunk)
            received += len(chunk)
            if pending >= BATCH_SIZE:
                batch = parts[0] if len(parts) == 1 else b"".join(parts)
                parts, pending = [], 0
                await hash_queue.put(batch)
                await write_queue.put(batch)
        if parts:
            batch = b"".join(parts)
            await hash_queue.put(batch)
            await write_queue.put(batch)
        await hash_queue.put(None)
        await write_queue.put(None)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            group.create_task(consume(hash_queue, hash_step))
            group.create_task(consume(write_queue, writer.write))
    except BaseExceptionGroup as failure:
        # One step failed and the others were cancelled: what the caller must see is the
        # failure itself (a stalled or vanished client, a storage error), not the group.
        raise failure.exceptions[0] from None
    return received
