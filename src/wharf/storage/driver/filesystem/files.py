"""File helpers shared by the filesystem driver, its readers and its writers.

The blocking ones (writing, opening, syncing) run in the driver's thread pool;
``close_when_done`` runs on the event loop and closes a descriptor only once the thread
using it is done.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TypeVar

__all__ = [
    "MISSING",
    "Buffer",
    "close_when_done",
    "nbytes",
    "open_creating",
    "sync_data",
    "write_all",
]

_T = TypeVar("_T")
Buffer = bytes | bytearray | memoryview

MISSING = (FileNotFoundError, NotADirectoryError)
sync_data = getattr(os, "fdatasync", os.fsync)


def nbytes(data: Buffer) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


def write_all(fd: int, chunks: Sequence[Buffer]) -> None:
    views = [memoryview(chunk).cast("B") for chunk in chunks]
    while views:
        written = os.writev(fd, views) if len(views) > 1 else os.write(fd, views[0])
        # Regular files rarely write short (a signal, a full disk); continue where it stopped.
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def open_creating(full: str, flags: int) -> int:
    try:
        return os.open(full, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return os.open(full, flags, 0o666)


def close_when_done(future: asyncio.Future[_T], fd: int) -> None:
    """Close ``fd`` once the thread call behind ``future`` has finished with it."""

    def close(done: asyncio.Future[_T]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: the caller has seen or abandoned it
        os.close(fd)

    if future.done():
        close(future)
    else:
        future.add_done_callback(close)
