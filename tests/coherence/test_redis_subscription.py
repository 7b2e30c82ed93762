"""The subscription's RESP reading: frames split anywhere, errors, and the handshake against
a real Redis that wants a password."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.support.redis_server import RedisServer, needs_redis
from wharf.coherence.redis_subscription import ReplyError, Subscription, command, subscribe
from wharf.config.operations import RedisConfig

FRAMES = (
    b"*3\r\n$9\r\nsubscribe\r\n$5\r\nwharf\r\n:1\r\n"
    b"*3\r\n$7\r\nmessage\r\n$5\r\nwharf\r\n$11\r\nlibrary/app\r\n"
    b"*2\r\n$4\r\npong\r\n$2\r\n17\r\n"
    b"*3\r\n$7\r\nmessage\r\n$5\r\nwharf\r\n$0\r\n\r\n"
)


def test_command_encoding() -> None:
    assert command(b"PING", b"7") == b"*2\r\n$4\r\nPING\r\n$1\r\n7\r\n"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50, len(FRAMES)])
async def test_frames_split_anywhere(size: int) -> None:
    received: list[object] = []
    subscription = Subscription(received.append)
    for start in range(0, len(FRAMES), size):
        subscription.data_received(FRAMES[start : start + size])
    assert await subscription.reply() == [b"subscribe", b"wharf", 1]
    assert received == [
        [b"message", b"wharf", b"library/app"],
        [b"pong", b"17"],
        [b"message", b"wharf", b""],
    ]


async def test_an_error_reply_is_raised() -> None:
    subscription = Subscription(lambda frame: None)
    subscription.data_received(b"-NOAUTH Authentication required.\r\n")
    with pytest.raises(ReplyError, match="NOAUTH"):
        await subscription.reply()


async def test_garbage_closes_the_subscription() -> None:
    subscription = Subscription(lambda frame: None)
    subscription.data_received(b"?what\r\n")
    with pytest.raises(ConnectionError):
        await subscription.closed


@needs_redis
async def test_authenticated_subscription_receives_what_is_published() -> None:
    with RedisServer("--requirepass", "sesame") as server:
        config = RedisConfig(server.addr, password="sesame", read_timeout=timedelta(seconds=2))
        received: list[object] = []
        subscription = await subscribe(config, "wharf:0:changes", received.append)
        try:
            publisher = server.client(password="sesame")
            assert publisher.publish("wharf:0:changes", "library/app") == 1
            publisher.close()
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.01)
            assert received == [[b"message", b"wharf:0:changes", b"library/app"]]
        finally:
            subscription.close()
            with pytest.raises(ConnectionError):
                await subscription.closed
        with pytest.raises(ReplyError):
            await subscribe(RedisConfig(server.addr, password="wrong"), "x", received.append)
