"""The writer's side of the protocol, and which coordination a configuration uses.

A manifest PUT runs its existence checks and its links inside :func:`protect`, which pins the
manifest's digest and everything it references for the running collection (safety rules 1
and 2). With ``redis`` configured every instance coordinates through Redis; otherwise through
``storage.gc.lockdir``, a local directory that every process serving the same storage on this
machine derives alike (several machines need Redis).

A registry process that accepts writes also holds the ``"serving"`` presence all its life
(:func:`hold_serving`), which an offline collection refuses to run beside.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from wharf.coherence.generations import Generations
from wharf.coherence.shared import machine_directory, storage_key
from wharf.config.model import Config, StorageConfig
from wharf.config.operations import RedisConfig
from wharf.errors import ManifestBlobUnknown, Unavailable
from wharf.extras import exceptions_of
from wharf.registry.gc.coordination import (
    Coordination,
    CoordinationError,
    FileCoordination,
    Presence,
    SweepConflict,
)
from wharf.registry.manifest_parse import ParsedManifest

if TYPE_CHECKING:
    import redis

__all__ = [
    "WriteGuard",
    "create_coordination",
    "default_lockdir",
    "hold_serving",
    "protect",
    "redis_client",
]

log = logging.getLogger("wharf.gc")

#: Seconds between attempts to announce this registry while the coordination is unreachable.
_RETRY = 5.0


def _unreachable() -> tuple[type[Exception], ...]:
    """What a coordination raises when it cannot be reached: Redis's errors too once a
    ``redis`` section imported redis-py (it is an optional extra)."""
    return (OSError, *exceptions_of("redis", "RedisError"))


def _failed() -> tuple[type[Exception], ...]:
    return (CoordinationError, *_unreachable())


def redis_client(settings: RedisConfig) -> redis.Redis:
    """A client (with its own connection pool) for the ``redis`` section."""
    import redis

    return redis.Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        username=settings.username or None,
        password=settings.password or None,
        socket_connect_timeout=settings.dial_timeout.total_seconds(),
        socket_timeout=max(settings.read_timeout, settings.write_timeout).total_seconds(),
        max_connections=settings.max_active or None,
        ssl=settings.tls,
        ssl_certfile=settings.tls_certificate or None,
        ssl_keyfile=settings.tls_key or None,
        ssl_ca_certs=settings.tls_client_cas[0] if settings.tls_client_cas else None,
    )


_private_lockdir: str | None = None


def default_lockdir(storage: StorageConfig) -> str:
    """``storage.gc.lockdir``, or a directory named after the storage, in shared memory."""
    global _private_lockdir
    if storage.gc.lockdir:
        return storage.gc.lockdir
    if storage.driver == "inmemory":
        # Only this process sees this storage, so only this process coordinates on it.
        if _private_lockdir is None:
            _private_lockdir = tempfile.mkdtemp(prefix="wharf-gc-")
            atexit.register(shutil.rmtree, _private_lockdir, True)
        return _private_lockdir
    # The same name for every process of this machine working on the storage.
    return os.path.join(machine_directory(), f"wharf-gc-{storage_key(storage)}")


def create_coordination(config: Config) -> Coordination:
    """A new coordination for ``config``, owned (and closed) by the caller."""
    if config.redis is not None:
        from wharf.registry.gc.redis_coordination import RedisCoordination

        return RedisCoordination(redis_client(config.redis))
    return FileCoordination(default_lockdir(config.storage))


class WriteGuard:
    """Pins what each manifest PUT depends on for the running collection. One per app, which
    closes it: it holds the coordination's connection pool or lock files."""

    def __init__(self, coordination: Coordination) -> None:
        self.coordination = coordination
        self._generation: tuple[int, int] | None = None

    async def aclose(self) -> None:
        await self.coordination.close()

    @contextlib.asynccontextmanager
    async def pinning(
        self, manifest: ParsedManifest, generations: Generations
    ) -> AsyncIterator[None]:
        digests = {str(manifest.digest), *(str(d.digest) for d in manifest.references())}
        try:
            ticket = await self.coordination.start_write(digests)
        except SweepConflict as conflict:
            references = [d for d in conflict.digests if d != str(manifest.digest)]
            if references:
                raise ManifestBlobUnknown(
                    {"digest": references[0]}, message="blob removed by garbage collection"
                ) from None
            raise Unavailable(
                {"digest": str(manifest.digest)},
                message="garbage collection is removing this manifest; push it again",
            ) from None
        except _failed() as error:
            # Fail closed: without the pin a running collection could delete what this
            # manifest needs.
            log.error("garbage-collection coordination unavailable: %s", error)
            raise Unavailable(message="garbage-collection coordination unavailable") from error
        if ticket.generation != self._generation:
            # A collection started or ended since this process last looked: what its caches
            # say about links may be stale (an index must not trust a swept child).
            generations.changed_everything()
            self._generation = ticket.generation
        try:
            yield
        finally:
            await self.coordination.end_write(ticket)


def protect(
    guard: WriteGuard | None, manifest: ParsedManifest, generations: Generations
) -> AbstractAsyncContextManager[None]:
    """Pin what ``manifest`` needs while its checks and links run (nothing without a guard)."""
    if guard is None:
        return contextlib.nullcontext()
    return guard.pinning(manifest, generations)


async def hold_serving(config: Config) -> None:
    """Hold the ``"serving"`` presence until cancelled, so that no offline collection runs
    beside this process (a read-only registry, which an offline collection may run beside,
    holds nothing)."""
    if config.storage.readonly or config.storage.driver == "inmemory":
        return
    try:
        coordination = create_coordination(config)
    except OSError as error:
        log.error("cannot announce this registry to offline garbage collections: %s", error)
        return
    presence: Presence | None = None
    try:
        failures = 0
        while presence is None:
            try:
                presence = await coordination.hold("serving")
            except _unreachable() as error:
                if not failures:
                    log.error(
                        "cannot announce this registry to offline garbage collections "
                        "(retrying every %.0fs): %s",
                        _RETRY,
                        error,
                    )
                failures += 1
                await asyncio.sleep(_RETRY)
        if failures:
            log.info("announced to offline garbage collections after %d attempts", failures + 1)
        try:
            offline = await coordination.present("offline")
        except _unreachable():
            offline = False  # the collection itself looks for this registry before removing
        if offline:
            log.warning(
                "an offline garbage collection of this storage is running: unless forced, it "
                "stops before its next removal now that this registry serves"
            )
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        if presence is not None:
            await presence.release()
        await coordination.close()
