"""Request bodies: the stall deadline counts only the time spent waiting for the client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from wharf.api.http import Request
from wharf.errors import SizeInvalid

pytestmark = pytest.mark.asyncio

_SCOPE: dict[str, Any] = {"type": "http", "method": "PATCH", "headers": []}


def _receiver(chunks: int, *, stall_after: int | None = None) -> Any:
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if stall_after is not None and sent == stall_after:
            await asyncio.sleep(3600)
        sent += 1
        return {"type": "http.request", "body": b"x" * 10, "more_body": sent < chunks}

    return receive


async def test_a_slow_consumer_is_not_a_stalled_client() -> None:
    request = Request(_SCOPE, _receiver(4), "/", body_timeout=0.1)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        await asyncio.sleep(0.15)  # longer than the timeout, but not waiting on the client
    assert received == 40


async def test_a_stalled_client_ends_the_body_with_408() -> None:
    request = Request(_SCOPE, _receiver(10, stall_after=3), "/", body_timeout=0.2)
    received: list[bytes] = []

    async def read() -> None:
        async for chunk in request.stream():
            received.append(chunk)

    began = time.monotonic()
    with pytest.raises(SizeInvalid) as failure:
        await read()
    assert failure.value.http_status == 408
    assert len(b"".join(received)) == 30
    assert 0.2 <= time.monotonic() - began < 5.0
    # The task was not left marked as cancelled: it can go on awaiting.
    await asyncio.sleep(0)


async def test_many_chunks_in_time_never_trip_the_deadline() -> None:
    async def trickle() -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {"type": "http.request", "body": b"x", "more_body": True}

    # Ten times the gap between chunks, so that a busy machine's pauses cannot trip it.
    request = Request(_SCOPE, trickle, "/", body_timeout=0.2)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received == 60:  # 1.2 s in all, six times the timeout
            break
    assert received == 60


async def test_a_cancelled_request_is_cancelled_not_stalled() -> None:
    request = Request(_SCOPE, _receiver(10, stall_after=1), "/", body_timeout=5)

    async def read() -> None:
        async for _ in request.stream():
            pass

    task = asyncio.create_task(read())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
