"""Coordination through Redis, for collectors and writers on several machines.

The same protocol as :class:`~wharf.registry.gc.coordination.FileCoordination`, with each step
one Lua script so that it is atomic on the server, and Redis's own clock for every deadline
(no two machines' clocks are compared). Keys, under ``prefix`` (default ``wharf:gc:``)::

    lock               the collector lease: a random token, expiring after ``lease_ttl``
                       unless the collector's heartbeat renews it
    epoch, changes     counters: collections started; collections ended or removals made
    active             the running epoch, expiring with the lease
    writers:<E>        sorted set of the writers that started in epoch E, scored by deadline
    pins:<E>           digests writers depend on during epoch E
    deleting:<E>       digests the collector claimed in epoch E
    present:<role>     sorted set of the holders of a role (``serving``, ``offline``), scored
                       by deadline; each holder's heartbeat moves its deadline on

A writer that dies is forgotten at its deadline (``writer_ttl``); a collector that dies loses
its lease after ``lease_ttl``, and with it the epoch: writers stop pinning and its claims go.
The collector deletes only while its last renewal is younger than half the lease, so that the
epoch is known to be still active at every deletion. A holder of a role that dies is absent
after ``presence_ttl`` (three heartbeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import redis

from wharf.registry.gc.coordination import (
    CollectorLease,
    Coordination,
    LeaseLost,
    Presence,
    Role,
    SweepConflict,
    WritersStuck,
    WriteTicket,
    check_digests,
)

__all__ = ["RedisCoordination"]

log = logging.getLogger("wharf.gc")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_START_WRITE = (
    _NOW
    + """
local p, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local epoch = tonumber(redis.call('GET', p .. 'epoch') or '0')
local changes = tonumber(redis.call('GET', p .. 'changes') or '0')
local active = redis.call('GET', p .. 'active')
if active and tonumber(active) == epoch then
  local deleting = p .. 'deleting:' .. epoch
  local conflicts = {}
  for i = 4, #ARGV do
    if redis.call('SISMEMBER', deleting, ARGV[i]) == 1 then
      conflicts[#conflicts + 1] = ARGV[i]
    end
  end
  if #conflicts > 0 then return {epoch, changes, conflicts} end
  local pins = p .. 'pins:' .. epoch
  for i = 4, #ARGV do redis.call('SADD', pins, ARGV[i]) end
  if redis.call('PTTL', pins) < ttl then redis.call('PEXPIRE', pins, ttl) end
end
local writers = p .. 'writers:' .. epoch
redis.call('ZADD', writers, now + ttl, id)
redis.call('PEXPIRE', writers, ttl)
return {epoch, changes, {}}
"""
)

_START_EPOCH = """
local p, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('GET', p .. 'lock') ~= token then return -1 end
local epoch = redis.call('INCR', p .. 'epoch')
redis.call('SET', p .. 'active', epoch, 'PX', ttl)
return epoch
"""

_RENEW = """
local p, token, ttl, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('GET', p .. 'lock') ~= token then return 0 end
redis.call('PEXPIRE', p .. 'lock', ttl)
if epoch ~= '0' then
  if redis.call('GET', p .. 'active') ~= epoch then return 0 end
  redis.call('PEXPIRE', p .. 'active', ttl)
  redis.call('PEXPIRE', p .. 'pins:' .. epoch, ttl)
  redis.call('PEXPIRE', p .. 'deleting:' .. epoch, ttl)
end
return 1
"""

_OLD_WRITERS = (
    _NOW
    + """
local writers = ARGV[1] .. 'writers:' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', writers, '-inf', now)
return redis.call('ZCARD', writers)
"""
)

_CLAIM = """
local p, token, epoch, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('GET', p .. 'lock') ~= token or redis.call('GET', p .. 'active') ~= epoch then
  return redis.error_reply('wharf-gc lease lost')
end
local pins, deleting = p .. 'pins:' .. epoch, p .. 'deleting:' .. epoch
local claimed = {}
for i = 5, #ARGV do
  if redis.call('SISMEMBER', pins, ARGV[i]) == 0 then
    redis.call('SADD', deleting, ARGV[i])
    claimed[#claimed + 1] = ARGV[i]
  end
end
if #claimed > 0 then redis.call('PEXPIRE', deleting, ttl) end
return claimed
"""

_FINISH = """
local p, token, epoch = ARGV[1], ARGV[2], ARGV[3]
if epoch ~= '0' then
  if redis.call('GET', p .. 'active') == epoch then redis.call('DEL', p .. 'active') end
  redis.call('DEL', p .. 'pins:' .. epoch, p .. 'deleting:' .. epoch)
  redis.call('INCR', p .. 'changes')
end
if redis.call('GET', p .. 'lock') == token then redis.call('DEL', p .. 'lock') end
return 1
"""

_HOLD = (
    _NOW
    + """
local key, member, ttl = ARGV[1] .. 'present:' .. ARGV[2], ARGV[3], tonumber(ARGV[4])
redis.call('ZADD', key, now + ttl, member)
if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
return 1
"""
)

_PRESENT = (
    _NOW
    + """
local key = ARGV[1] .. 'present:' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
return redis.call('ZCARD', key)
"""
)


class RedisCoordination(Coordination):
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "wharf:gc:",
        lease_ttl: float = 30.0,
        writer_ttl: float = 600.0,
        presence_ttl: float = 10.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_ttl_ms = int(lease_ttl * 1000)
        self.writer_ttl_ms = int(writer_ttl * 1000)
        self.presence_ttl_ms = int(presence_ttl * 1000)
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("start_write", _START_WRITE),
                ("start_epoch", _START_EPOCH),
                ("renew", _RENEW),
                ("old_writers", _OLD_WRITERS),
                ("claim", _CLAIM),
                ("finish", _FINISH),
                ("hold", _HOLD),
                ("present", _PRESENT),
            )
        }

    def run(self, script: str, *args: str | int) -> Any:
        """Run a script (blocking: call in a thread)."""
        return self._scripts[script](keys=[], args=[self.prefix, *args])

    async def start_write(self, digests: Collection[str]) -> WriteTicket:
        names = check_digests(digests)
        writer = uuid.uuid4().hex
        epoch, changes, conflicts = await asyncio.to_thread(
            self.run, "start_write", writer, self.writer_ttl_ms, *names
        )
        if conflicts:
            raise SweepConflict([_text(c) for c in conflicts])
        return WriteTicket(writer, int(epoch), (int(epoch), int(changes)))

    async def end_write(self, ticket: WriteTicket) -> None:
        await asyncio.to_thread(self.client.zrem, f"{self.prefix}writers:{ticket.epoch}", ticket.id)

    async def acquire(self) -> CollectorLease | None:
        token = secrets.token_hex(16)
        taken = await asyncio.to_thread(
            self.client.set, f"{self.prefix}lock", token, nx=True, px=self.lease_ttl_ms
        )
        if not taken:
            return None
        return _RedisLease(self, token)

    async def hold(self, role: Role) -> Presence:
        member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(self.run, "hold", role, member, self.presence_ttl_ms)
        return _RedisPresence(self, role, member)

    async def present(self, role: Role) -> bool:
        return bool(await asyncio.to_thread(self.run, "present", role))

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


class _RedisPresence(Presence):
    def __init__(self, owner: RedisCoordination, role: Role, member: str) -> None:
        self._owner = owner
        self._role = role
        self._member = member
        self._heartbeat = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        owner = self._owner
        failing = False
        while True:
            await asyncio.sleep(owner.presence_ttl_ms / 3000)
            try:
                await asyncio.to_thread(
                    owner.run, "hold", self._role, self._member, owner.presence_ttl_ms
                )
            except redis.RedisError as error:
                # Absent once the last deadline passes: an offline collection may then run,
                # if it reaches a Redis this process does not.
                if not failing:
                    log.warning("cannot renew the %s presence in Redis: %s", self._role, error)
                failing = True
                continue
            if failing:
                log.info("the %s presence in Redis is renewed again", self._role)
                failing = False

    async def release(self) -> None:
        self._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat
        key = f"{self._owner.prefix}present:{self._role}"
        with contextlib.suppress(redis.RedisError):  # it expires by itself
            await asyncio.to_thread(self._owner.client.zrem, key, self._member)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisLease(CollectorLease):
    def __init__(self, owner: RedisCoordination, token: str) -> None:
        self._owner = owner
        self._token = token
        self._renewed = time.monotonic()
        self._lost = False
        self._heartbeat = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        owner = self._owner
        interval = owner.lease_ttl_ms / 4000
        while not self._lost:
            await asyncio.sleep(interval)
            try:
                renewed = await asyncio.to_thread(
                    owner.run, "renew", self._token, owner.lease_ttl_ms, self.epoch
                )
            except redis.RedisError as error:
                log.warning("garbage collection: cannot renew the lease: %s", error)
                continue  # check() stops deletions once the last renewal is too old
            if not renewed:
                self._lost = True
                return
            self._renewed = time.monotonic()

    def check(self) -> None:
        age = time.monotonic() - self._renewed
        if self._lost or age * 1000 > self._owner.lease_ttl_ms / 2:
            raise LeaseLost("the garbage-collection lease expired or was taken over")

    async def start_epoch(self) -> int:
        self.check()
        owner = self._owner
        epoch = int(
            await asyncio.to_thread(owner.run, "start_epoch", self._token, owner.lease_ttl_ms)
        )
        if epoch < 0:
            raise LeaseLost("the garbage-collection lease was taken over")
        self.epoch = epoch
        return epoch

    async def drain_writers(self, within: float) -> None:
        deadline = time.monotonic() + within
        while await asyncio.to_thread(self._owner.run, "old_writers", self.epoch - 1):
            if time.monotonic() > deadline:
                raise WritersStuck(f"writers still running after {within:.0f}s")
            await asyncio.sleep(0.02)

    async def claim(self, digests: Sequence[str]) -> set[str]:
        self.check()
        owner = self._owner
        try:
            claimed = await asyncio.to_thread(
                owner.run,
                "claim",
                self._token,
                self.epoch,
                owner.lease_ttl_ms,
                *check_digests(digests),
            )
        except redis.ResponseError as error:
            if "lease lost" in str(error):
                self._lost = True
                raise LeaseLost(str(error)) from error
            raise
        return {_text(c) for c in claimed}

    async def unclaim(self, digests: Sequence[str]) -> None:
        if digests:
            key = f"{self._owner.prefix}deleting:{self.epoch}"
            await asyncio.to_thread(self._owner.client.srem, key, *check_digests(digests))

    async def announce(self) -> None:
        await asyncio.to_thread(self._owner.client.incr, f"{self._owner.prefix}changes")

    async def finish(self) -> None:
        self._lost = True
        self._heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._heartbeat
        await asyncio.to_thread(self._owner.run, "finish", self._token, self.epoch)
