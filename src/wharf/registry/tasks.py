"""Run work over a stream of items, a bounded number at once.

Tasks are made as items arrive, never for the whole stream up front, so a walk of millions of
paths holds only ``limit`` of them in flight. The first failure cancels the rest and is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TypeVar

__all__ = ["for_each"]

T = TypeVar("T")


async def for_each(
    items: AsyncIterable[T] | Iterable[T], work: Callable[[T], Awaitable[None]], limit: int
) -> None:
    running: set[asyncio.Future[None]] = set()

    async def wait(below: int) -> None:
        nonlocal running
        while len(running) > below:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            errors = [task.exception() for task in done]  # every one retrieved, then the first
            if error := next((error for error in errors if error is not None), None):
                raise error

    try:
        if isinstance(items, AsyncIterable):
            async for item in items:
                await wait(limit - 1)
                running.add(asyncio.ensure_future(work(item)))
        else:
            for item in items:
                await wait(limit - 1)
                running.add(asyncio.ensure_future(work(item)))
        await wait(0)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
            for task in running:
                if not task.cancelled():
                    task.exception()  # retrieved: the first failure is the one raised
