"""Change tokens shared through a real Redis: a change announced by one process is applied by
another before its next read barrier returns; while Redis is away nothing is trusted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from tests.support.redis_server import RedisServer, needs_redis
from wharf.coherence.redis_tokens import RedisGenerations, channel_name
from wharf.config.operations import RedisConfig
from wharf.observability.context import CURRENT, RequestInfo

pytestmark = needs_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _config(addr: str, **options: timedelta) -> RedisConfig:
    return RedisConfig(
        addr,
        dial_timeout=timedelta(seconds=1),
        read_timeout=options.get("read_timeout", timedelta(seconds=2)),
    )


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[RedisGenerations, ...]]:
    first = RedisGenerations(_config(redis_server.addr))
    second = RedisGenerations(_config(redis_server.addr))
    for generations in (first, second):
        generations.start()
        assert await generations.wait_subscribed()
    yield first, second
    for generations in (first, second):
        await generations.aclose()


async def _write(generations: RedisGenerations, repository: str) -> None:
    """What a write request does: change, then settle its announcements before answering."""
    info = RequestInfo("test", "PUT", "/")
    token = CURRENT.set(info)
    try:
        generations.changed(repository)
        await generations.settle(info.announcements or [])
    finally:
        CURRENT.reset(token)


async def test_a_change_is_seen_by_the_other_process_after_its_barrier(
    pair: tuple[RedisGenerations, RedisGenerations],
) -> None:
    first, second = pair
    for _ in range(200):
        await second.barrier()
        before = second.token("library/app")
        other = second.token("library/other")
        await _write(first, "library/app")
        await second.barrier()  # no sleep: the barrier alone must be enough
        assert second.token("library/app") != before
        assert second.token("library/other") == other


async def test_one_barrier_serves_concurrent_requests(
    pair: tuple[RedisGenerations, RedisGenerations],
) -> None:
    _, second = pair
    await asyncio.gather(*(second.barrier() for _ in range(500)))
    assert second.token("a") == second.token("a")


async def test_everything_changes_every_token(
    pair: tuple[RedisGenerations, RedisGenerations],
) -> None:
    first, second = pair
    await second.barrier()
    before = [second.token(name) for name in ("a", "b", "c")]
    info = RequestInfo("test", "DELETE", "/")
    token = CURRENT.set(info)
    first.changed_everything()
    await first.settle(info.announcements or [])
    CURRENT.reset(token)
    await second.barrier()
    after = [second.token(name) for name in ("a", "b", "c")]
    assert all(old != new for old, new in zip(before, after, strict=True))


async def test_without_redis_nothing_is_trusted_until_it_is_back(
    redis_server: RedisServer,
) -> None:
    generations = RedisGenerations(_config(redis_server.addr))
    generations.start()
    try:
        assert await generations.wait_subscribed()
        await generations.barrier()
        assert generations.token("x") == generations.token("x")
        with redis_server.stopped():
            for _ in range(100):
                if generations.token("x") != generations.token("x"):
                    break
                await asyncio.sleep(0.05)
            # Each read gets a token never seen before: caches miss, storage answers.
            assert generations.token("x") != generations.token("x")
            await asyncio.wait_for(generations.barrier(), 1)  # does not wait for Redis
            info = RequestInfo("test", "PUT", "/")
            token = CURRENT.set(info)
            generations.changed("x")
            CURRENT.reset(token)
            with pytest.raises(ConnectionError):
                await generations.settle(info.announcements or [])
        for _ in range(100):
            if await generations.wait_subscribed():
                break
        await generations.barrier()
        assert generations.token("x") == generations.token("x")
    finally:
        await generations.aclose()


async def test_a_pong_that_does_not_come_stops_the_trust() -> None:
    """A subscription that confirms and then goes silent (a half-open connection)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n")  # *2 SUBSCRIBE <channel>
            channel = channel_name(RedisConfig("x:1")).encode()
            writer.write(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(channel), channel))
            await writer.drain()
            await reader.read()  # swallow the PINGs
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    generations = RedisGenerations(
        _config(f"127.0.0.1:{port}", read_timeout=timedelta(milliseconds=200))
    )
    generations.start()
    try:
        assert await generations.wait_subscribed()
        assert generations.token("x") == generations.token("x")
        await asyncio.wait_for(generations.barrier(), 2)  # released by the timeout
        assert generations.token("x") != generations.token("x")
    finally:
        await generations.aclose()
        server.close()
        await server.wait_closed()


def test_under_uvloop_as_the_servers_run(redis_server: RedisServer) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        first = RedisGenerations(_config(redis_server.addr))
        second = RedisGenerations(_config(redis_server.addr))
        for generations in (first, second):
            generations.start()
            assert await generations.wait_subscribed()
        try:
            for _ in range(20):
                await second.barrier()
                before = second.token("app")
                await _write(first, "app")
                await second.barrier()
                assert second.token("app") != before
        finally:
            for generations in (first, second):
                await generations.aclose()

    uvloop.run(scenario())
