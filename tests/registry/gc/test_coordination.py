"""The coordination contract, on flock files and on a real Redis: one lease, pins against
claims, the barrier for writers of the previous epoch, a dead collector's epoch ending, and
the presence of serving registries and offline collections."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from wharf.config.operations import RedisConfig
from wharf.registry.gc.coordination import (
    Coordination,
    FileCoordination,
    LeaseLost,
    OfflineCollection,
    RegistryServing,
    SweepConflict,
    WritersStuck,
)
from wharf.registry.gc.guard import redis_client
from wharf.registry.gc.redis_coordination import RedisCoordination

pytestmark = pytest.mark.asyncio

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


@pytest.fixture(params=["file", "redis"])
async def coordination(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Coordination]:
    if request.param == "file":
        yield FileCoordination(str(tmp_path / "gc"))
        return
    addr = request.getfixturevalue("redis_addr")
    found = RedisCoordination(redis_client(RedisConfig(addr)))
    yield found
    await found.close()


async def test_one_lease_at_a_time(coordination: Coordination) -> None:
    lease = await coordination.acquire()
    assert lease is not None
    assert await coordination.acquire() is None
    await lease.finish()
    again = await coordination.acquire()
    assert again is not None
    await again.finish()


async def test_a_pinned_digest_cannot_be_claimed(coordination: Coordination) -> None:
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    await lease.drain_writers(5)
    ticket = await coordination.start_write([A])
    assert await lease.claim([A, B]) == {B}
    await coordination.end_write(ticket)
    # The pin lasts for the epoch: the writer's links are in place by now, but the mark
    # did not see them.
    assert await lease.claim([A]) == set()
    await lease.finish()


async def test_a_writer_cannot_pin_a_claimed_digest(coordination: Coordination) -> None:
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    assert await lease.claim([A]) == {A}
    with pytest.raises(SweepConflict) as conflict:
        await coordination.start_write([A, B])
    assert conflict.value.digests == [A]

    await lease.unclaim([A])
    ticket = await coordination.start_write([A, B])
    await coordination.end_write(ticket)
    await lease.finish()

    # Outside an epoch nothing is pinned or claimed.
    ticket = await coordination.start_write([A])
    await coordination.end_write(ticket)


async def test_the_epoch_waits_for_writers_that_started_before_it(
    coordination: Coordination,
) -> None:
    early = await coordination.start_write([A])
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    late = await coordination.start_write([B])  # pins instead: it does not hold the barrier

    with pytest.raises(WritersStuck):
        await lease.drain_writers(0.2)
    waiting = asyncio.create_task(lease.drain_writers(5))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await coordination.end_write(early)
    await asyncio.wait_for(waiting, 5)

    assert await lease.claim([B]) == set()
    await coordination.end_write(late)
    await lease.finish()


async def test_the_generation_changes_when_a_collection_starts_removes_and_ends(
    coordination: Coordination,
) -> None:
    before = await coordination.start_write([])
    await coordination.end_write(before)
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    during = await coordination.start_write([])
    await coordination.end_write(during)
    await lease.announce()
    announced = await coordination.start_write([])
    await coordination.end_write(announced)
    await lease.finish()
    after = await coordination.start_write([])
    await coordination.end_write(after)
    generations = {before.generation, during.generation, announced.generation, after.generation}
    assert len(generations) == 4


async def test_a_finished_lease_can_no_longer_claim(coordination: Coordination) -> None:
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    await lease.finish()
    with pytest.raises(LeaseLost):
        await lease.claim([A])


async def test_digests_are_checked(coordination: Coordination) -> None:
    with pytest.raises(ValueError, match="not a digest"):
        await coordination.start_write(["../../etc/passwd"])


async def test_a_dead_collectors_claims_end_with_it(tmp_path: Path) -> None:
    directory = tmp_path / "gc"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from wharf.registry.gc.coordination import FileCoordination

        async def main():
            lease = await FileCoordination({str(directory)!r}).acquire()
            await lease.start_epoch()
            await lease.claim([{A!r}])
            print("claimed", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    coordination = FileCoordination(str(directory))
    try:
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"claimed"
        with pytest.raises(SweepConflict):
            await coordination.start_write([A])
        assert await coordination.acquire() is None
    finally:
        process.kill()
        await process.wait()
    ticket = await coordination.start_write([A])
    await coordination.end_write(ticket)
    lease = await coordination.acquire()
    assert lease is not None
    await lease.finish()


async def test_a_redis_lease_taken_over_stops_the_collector(redis_addr: str) -> None:
    settings = RedisConfig(redis_addr)
    coordination = RedisCoordination(redis_client(settings), lease_ttl=0.4)
    try:
        lease = await coordination.acquire()
        assert lease is not None
        await lease.start_epoch()
        assert await lease.claim([A]) == {A}
        await asyncio.sleep(0.3)
        lease.check()  # renewed by its heartbeat meanwhile
        other = redis.Redis(host=settings.host, port=settings.port)
        other.set("wharf:gc:lock", "someone else")
        other.close()
        await asyncio.sleep(0.3)
        with pytest.raises(LeaseLost):
            lease.check()
        with pytest.raises(LeaseLost):
            await lease.claim([B])
        await lease.finish()
    finally:
        await coordination.close()


async def test_a_writer_of_a_dead_redis_collector_is_not_blocked(redis_addr: str) -> None:
    settings = RedisConfig(redis_addr)
    collector = RedisCoordination(redis_client(settings), lease_ttl=0.3)
    writer = RedisCoordination(redis_client(settings), writer_ttl=0.3)
    try:
        lease = await collector.acquire()
        assert lease is not None
        await lease.start_epoch()
        assert await lease.claim([A]) == {A}
        with pytest.raises(SweepConflict):
            await writer.start_write([A])
        # The collector dies: no heartbeat, no finish. Its lease and epoch expire.
        getattr(lease, "_heartbeat").cancel()  # noqa: B009 - simulating a crash
        await asyncio.sleep(0.5)
        ticket = await writer.start_write([A])
        await writer.end_write(ticket)
        # A writer that dies is forgotten at its deadline: the next epoch does not wait.
        await writer.start_write([B])
        lease = await collector.acquire()
        assert lease is not None
        await lease.start_epoch()
        await lease.drain_writers(5)
        await lease.finish()
    finally:
        await collector.close()
        await writer.close()


async def test_a_role_is_present_while_anyone_holds_it(coordination: Coordination) -> None:
    assert not await coordination.present("serving")
    first = await coordination.hold("serving")
    second = await coordination.hold("serving")
    assert await coordination.present("serving")
    assert not await coordination.present("offline")
    await first.release()
    assert await coordination.present("serving")
    await second.release()
    await second.release()  # releasing twice is harmless
    assert not await coordination.present("serving")


async def test_an_offline_collection_stops_once_a_registry_serves(
    coordination: Coordination,
) -> None:
    offline = OfflineCollection(coordination)
    lease = await offline.acquire()
    assert lease is not None
    await lease.start_epoch()
    await lease.drain_writers(5)
    assert await lease.claim([A]) == {A}
    serving = await coordination.hold("serving")
    try:
        with pytest.raises(RegistryServing):
            await lease.claim([B])
    finally:
        await serving.release()
        await lease.finish()
    again = await coordination.acquire()
    assert again is not None, "the lease was given back"
    await again.finish()


def _holder(script: str) -> str:
    return textwrap.dedent(
        f"""
        import asyncio
        from wharf.config.operations import RedisConfig
        from wharf.registry.gc.coordination import FileCoordination
        from wharf.registry.gc.guard import redis_client
        from wharf.registry.gc.redis_coordination import RedisCoordination

        async def main():
            coordination = {script}
            await coordination.hold("serving")
            print("holding", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )


async def _killed_holder(script: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _holder(script), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"holding"
    finally:
        process.kill()
        await process.wait()


async def test_a_killed_holder_is_absent_at_once_with_files(tmp_path: Path) -> None:
    directory = str(tmp_path / "gc")
    await _killed_holder(f"FileCoordination({directory!r})")
    assert not await FileCoordination(directory).present("serving")


async def test_a_killed_holder_is_absent_after_the_presence_ttl_on_redis(
    redis_addr: str,
) -> None:
    coordination = RedisCoordination(redis_client(RedisConfig(redis_addr)), presence_ttl=1.5)
    try:
        alive = await coordination.hold("offline")
        await asyncio.sleep(2)
        assert await coordination.present("offline"), "renewed by its heartbeat"
        await alive.release()
        assert not await coordination.present("offline")

        await _killed_holder(
            f"RedisCoordination(redis_client(RedisConfig({redis_addr!r})), presence_ttl=1.5)"
        )
        killed = time.monotonic()
        assert await coordination.present("serving")
        while True:
            started = time.monotonic()
            if not await coordination.present("serving"):
                break
            assert started - killed < 1.5, "outlived its TTL"
            await asyncio.sleep(0.05)
    finally:
        await coordination.close()
