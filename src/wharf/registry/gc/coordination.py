"""How a collector and the registry's writers keep out of each other's way.

The interface is small: writers (manifest PUTs) ``start_write`` with the digests they are
about to depend on and ``end_write`` when their links are in place; the collector takes a
lease (one collector at a time), starts an epoch, waits for the writers that began before it,
and ``claim``s each digest before deleting it. See :mod:`wharf.registry.gc.safety` for why this
makes online collection safe.

A claim and a pin exclude each other atomically: a digest a writer pinned in this epoch cannot
be claimed, and a writer cannot pin a digest already claimed (it gets :class:`SweepConflict`
and its PUT fails as if the blob were already gone, which it is about to be).

Presence is the offline collection's part: a collection without a grace period deletes the
blobs of pushes in progress, so it must run alone. Every serving registry process holds the
``"serving"`` role all its life, an offline collection the ``"offline"`` role all run long,
and each looks whether the other is present; :class:`OfflineCollection` looks again before
every claim, so that a registry started during the collection stops it.

Two implementations: :class:`FileCoordination` here (processes on one machine, through
``flock`` on a local directory; a process that dies releases its locks) and
``RedisCoordination`` (several machines).

File layout of :class:`FileCoordination`::

    <dir>/state.lock                 flock LOCK_EX around every read-modify-write below
    <dir>/state.json                 {"epoch": E, "active": bool, "changes": C}
    <dir>/collector.lock             flock LOCK_EX held by the running collector, all run long
    <dir>/writers-0.lock, -1.lock    flock LOCK_SH held by each writer of an even/odd epoch
    <dir>/epoch-<E>/pins/<digest>    digests writers depend on during epoch E
    <dir>/epoch-<E>/deleting/<digest>  digests the collector claimed in epoch E
    <dir>/serving.lock               flock LOCK_SH held by each serving registry process
    <dir>/offline.lock               flock LOCK_SH held by an offline collection, all run long

Whoever looks whether a role is present tries LOCK_EX on its file without waiting, and lets
go at once; the role is present when that fails for longer than another looker's try.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CollectorLease",
    "Coordination",
    "CoordinationError",
    "FileCoordination",
    "LeaseLost",
    "OfflineCollection",
    "Presence",
    "RegistryServing",
    "Role",
    "SweepConflict",
    "WriteTicket",
    "WritersStuck",
]

#: ``serving``: a registry process that accepts writes; ``offline``: a collection that
#: assumes none does.
Role = Literal["serving", "offline"]

_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


class CoordinationError(Exception):
    """Base of the coordination errors."""


class SweepConflict(CoordinationError):
    """A writer depends on digests the running collector has claimed for deletion."""

    def __init__(self, digests: Collection[str]) -> None:
        self.digests = sorted(digests)
        super().__init__(f"being deleted by garbage collection: {', '.join(self.digests)}")


class LeaseLost(CoordinationError):
    """The collector's lease ended (expired or taken over): it must stop deleting."""


class WritersStuck(CoordinationError):
    """Writers that started before the epoch did not finish in time."""


class RegistryServing(CoordinationError):
    """A registry serves the storage that an offline collection was sweeping."""


@dataclass(frozen=True, slots=True)
class WriteTicket:
    id: str
    epoch: int
    #: Changes whenever a collection starts, removes manifests, or ends: a writer that sees
    #: a new value drops cached views of storage that a sweep may have made stale.
    generation: tuple[int, int]


class CollectorLease(ABC):
    """The right to collect, held by one collector at a time."""

    epoch: int = 0

    @abstractmethod
    async def start_epoch(self) -> int:
        """Begin an epoch: from now on writers pin what they depend on."""

    @abstractmethod
    async def drain_writers(self, within: float) -> None:
        """Wait until every writer that started before the epoch has ended."""

    @abstractmethod
    async def claim(self, digests: Sequence[str]) -> set[str]:
        """Claim digests for deletion; returns those not pinned (now claimed)."""

    @abstractmethod
    async def unclaim(self, digests: Sequence[str]) -> None:
        """Give back claims on digests that will not be deleted after all."""

    def check(self) -> None:  # noqa: B027 - leases that cannot expire have nothing to check
        """Raise LeaseLost when deleting is no longer safe."""

    @abstractmethod
    async def announce(self) -> None:
        """Change the writers' generation: something they may have cached was removed."""

    @abstractmethod
    async def finish(self) -> None:
        """End the epoch (claims and pins are dropped) and release the lease."""


class Presence(ABC):
    """A role held until released, or until its holder dies."""

    @abstractmethod
    async def release(self) -> None: ...


class Coordination(ABC):
    @abstractmethod
    async def start_write(self, digests: Collection[str]) -> WriteTicket:
        """Register a writer depending on ``digests``; SweepConflict when any is claimed."""

    @abstractmethod
    async def end_write(self, ticket: WriteTicket) -> None: ...

    @abstractmethod
    async def acquire(self) -> CollectorLease | None:
        """The collector lease, or None while another collector holds it."""

    @abstractmethod
    async def hold(self, role: Role) -> Presence:
        """Be present in ``role`` until released: many holders may hold it at once."""

    @abstractmethod
    async def present(self, role: Role) -> bool:
        """Whether a live process holds ``role`` now."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


class OfflineCollection(Coordination):
    """A collection's coordination that stops it (:class:`RegistryServing`) before any claim
    once a registry serves the storage.

    Such a collection keeps no grace period, so it would delete a blob pushed for a manifest
    not yet put. Looking before each claim is enough for what a registry started during the
    collection pushes: the blob exists only after the registry announced itself, and the sweep
    lists blobs before it claims them. A push it started in between finds its blob claimed or
    kept, as pushes during an online collection do.
    """

    def __init__(self, inner: Coordination) -> None:
        self.inner = inner

    async def start_write(self, digests: Collection[str]) -> WriteTicket:
        return await self.inner.start_write(digests)

    async def end_write(self, ticket: WriteTicket) -> None:
        await self.inner.end_write(ticket)

    async def acquire(self) -> CollectorLease | None:
        lease = await self.inner.acquire()
        return None if lease is None else _OfflineLease(self.inner, lease)

    async def hold(self, role: Role) -> Presence:
        return await self.inner.hold(role)

    async def present(self, role: Role) -> bool:
        return await self.inner.present(role)

    async def close(self) -> None:
        await self.inner.close()


class _OfflineLease(CollectorLease):
    def __init__(self, coordination: Coordination, inner: CollectorLease) -> None:
        self._coordination = coordination
        self._inner = inner

    async def start_epoch(self) -> int:
        self.epoch = await self._inner.start_epoch()
        return self.epoch

    async def drain_writers(self, within: float) -> None:
        await self._inner.drain_writers(within)

    async def claim(self, digests: Sequence[str]) -> set[str]:
        if await self._coordination.present("serving"):
            raise RegistryServing("a registry started serving this storage")
        return await self._inner.claim(digests)

    async def unclaim(self, digests: Sequence[str]) -> None:
        await self._inner.unclaim(digests)

    def check(self) -> None:
        self._inner.check()

    async def announce(self) -> None:
        await self._inner.announce()

    async def finish(self) -> None:
        await self._inner.finish()


def check_digests(digests: Collection[str]) -> list[str]:
    """Digests become file names and Redis members: refuse anything else."""
    for digest in digests:
        if not _DIGEST_RE.fullmatch(digest):
            raise ValueError(f"not a digest: {digest[:100]!r}")
    return sorted(set(digests))


# --- processes on one machine --------------------------------------------------------------


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        # The directory went (a cleaned /dev/shm, a reboot): start afresh rather than fail
        # every push. Locks held on files of the old directory are lost with it, so a
        # collection running at that moment is no longer coordinated; do not remove the
        # directory while one runs.
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


class _Locked:
    """``flock`` on a file for the duration of a ``with`` block (blocking: call in a thread)."""

    def __init__(self, path: str, operation: int = fcntl.LOCK_EX) -> None:
        self._fd = _open(path)
        self._operation = operation

    def __enter__(self) -> int:
        fcntl.flock(self._fd, self._operation)
        return self._fd

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing releases the lock


def _try_lock(path: str, operation: int) -> int | None:
    """An open descriptor holding the lock, or None when someone else holds it."""
    fd = _open(path)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _name(digest: str) -> str:
    return digest.replace(":", "-")


class FileCoordination(Coordination):
    """Coordination through ``flock`` in a local directory shared by the processes."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        #: Open descriptors holding each running writer's LOCK_SH, by ticket id.
        self._writers: dict[str, int] = {}

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _epoch_dir(self, epoch: int, kind: str) -> str:
        return os.path.join(self.directory, f"epoch-{epoch}", kind)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self._path("state.json"), encoding="utf-8") as stream:
                state = json.load(stream)
        except (FileNotFoundError, ValueError):
            state = {}
        return {
            "epoch": int(state.get("epoch", 0)),
            "active": bool(state.get("active", False)),
            "changes": int(state.get("changes", 0)),
        }

    def _write(self, state: dict[str, Any]) -> None:
        temporary = self._path(f"state.json.{uuid.uuid4().hex}")
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(state, stream)
        os.replace(temporary, self._path("state.json"))

    def _collector_alive(self) -> bool:
        fd = _try_lock(self._path("collector.lock"), fcntl.LOCK_EX)
        if fd is None:
            return True
        os.close(fd)
        return False

    # -- writers ------------------------------------------------------------------------------

    def _start_write(self, digests: list[str]) -> tuple[WriteTicket, int]:
        with _Locked(self._path("state.lock")):
            state = self._read()
            if state["active"] and not self._collector_alive():
                # The collector died mid-epoch: nothing will be deleted under its claims.
                state["active"] = False
                state["changes"] += 1
                self._write(state)
            epoch = state["epoch"]
            if state["active"]:
                deleting = self._epoch_dir(epoch, "deleting")
                conflicts = [d for d in digests if os.path.exists(f"{deleting}/{_name(d)}")]
                if conflicts:
                    raise SweepConflict(conflicts)
                pins = self._epoch_dir(epoch, "pins")
                os.makedirs(pins, exist_ok=True)
                for digest in digests:
                    with open(f"{pins}/{_name(digest)}", "a"):
                        pass
            # Cannot block: only a collector draining an older epoch takes this file's
            # LOCK_EX, and it bumps the epoch (under state.lock, held here) before it does.
            fd = _open(self._path(f"writers-{epoch % 2}.lock"))
            fcntl.flock(fd, fcntl.LOCK_SH)
        ticket = WriteTicket(uuid.uuid4().hex, epoch, (epoch, state["changes"]))
        return ticket, fd

    async def start_write(self, digests: Collection[str]) -> WriteTicket:
        ticket, fd = await asyncio.to_thread(self._start_write, check_digests(digests))
        self._writers[ticket.id] = fd
        return ticket

    async def end_write(self, ticket: WriteTicket) -> None:
        fd = self._writers.pop(ticket.id, None)
        if fd is not None:
            os.close(fd)

    # -- the collector ------------------------------------------------------------------------

    async def acquire(self) -> CollectorLease | None:
        fd = await asyncio.to_thread(_try_lock, self._path("collector.lock"), fcntl.LOCK_EX)
        return None if fd is None else _FileLease(self, fd)

    # -- presence -----------------------------------------------------------------------------

    async def hold(self, role: Role) -> Presence:
        # Not in a thread: a holder cancelled while the thread took the lock would leak it.
        fd = _open(self._path(f"{role}.lock"))
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return _FilePresence(fd)
                except BlockingIOError:
                    await asyncio.sleep(0.005)  # someone is looking, for a moment
        except BaseException:
            os.close(fd)
            raise

    async def present(self, role: Role) -> bool:
        # A LOCK_EX that lasts is a holder; one let go within moments was another looker.
        for _ in range(10):
            fd = await asyncio.to_thread(_try_lock, self._path(f"{role}.lock"), fcntl.LOCK_EX)
            if fd is not None:
                os.close(fd)
                return False
            await asyncio.sleep(0.005)
        return True


class _FilePresence(Presence):
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # a process that dies closes it just the same
            self._fd = None


class _FileLease(CollectorLease):
    def __init__(self, owner: FileCoordination, fd: int) -> None:
        self._owner = owner
        self._fd: int | None = fd

    def _start_epoch(self) -> int:
        owner = self._owner
        with _Locked(owner._path("state.lock")):
            state = owner._read()
            state["epoch"] += 1
            state["active"] = True
            for name in os.listdir(owner.directory):
                if name.startswith("epoch-"):  # left by a collector that died
                    shutil.rmtree(owner._path(name), ignore_errors=True)
            epoch = int(state["epoch"])
            os.makedirs(owner._epoch_dir(epoch, "pins"))
            os.makedirs(owner._epoch_dir(epoch, "deleting"))
            owner._write(state)
        return epoch

    async def start_epoch(self) -> int:
        self.check()
        self.epoch = await asyncio.to_thread(self._start_epoch)
        return self.epoch

    async def drain_writers(self, within: float) -> None:
        path = self._owner._path(f"writers-{(self.epoch - 1) % 2}.lock")
        deadline = time.monotonic() + within
        while True:
            fd = await asyncio.to_thread(_try_lock, path, fcntl.LOCK_EX)
            if fd is not None:
                os.close(fd)
                return
            if time.monotonic() > deadline:
                raise WritersStuck(f"writers still running after {within:.0f}s")
            await asyncio.sleep(0.02)

    def _claim(self, digests: list[str]) -> set[str]:
        owner = self._owner
        with _Locked(owner._path("state.lock")):
            state = owner._read()
            if not state["active"] or state["epoch"] != self.epoch:
                raise LeaseLost("the collection epoch ended")
            pins = owner._epoch_dir(self.epoch, "pins")
            deleting = owner._epoch_dir(self.epoch, "deleting")
            claimed = set()
            for digest in digests:
                if os.path.exists(f"{pins}/{_name(digest)}"):
                    continue
                with open(f"{deleting}/{_name(digest)}", "a"):
                    pass
                claimed.add(digest)
        return claimed

    async def claim(self, digests: Sequence[str]) -> set[str]:
        self.check()
        return await asyncio.to_thread(self._claim, check_digests(digests))

    def _unclaim(self, digests: list[str]) -> None:
        owner = self._owner
        with _Locked(owner._path("state.lock")):
            deleting = owner._epoch_dir(self.epoch, "deleting")
            for digest in digests:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{deleting}/{_name(digest)}")

    async def unclaim(self, digests: Sequence[str]) -> None:
        if digests:
            await asyncio.to_thread(self._unclaim, check_digests(digests))

    def check(self) -> None:
        if self._fd is None:
            raise LeaseLost("the lease was released")

    def _announce(self) -> None:
        owner = self._owner
        with _Locked(owner._path("state.lock")):
            state = owner._read()
            state["changes"] += 1
            owner._write(state)

    async def announce(self) -> None:
        await asyncio.to_thread(self._announce)

    def _finish(self) -> None:
        owner = self._owner
        if self.epoch:
            with _Locked(owner._path("state.lock")):
                state = owner._read()
                if state["epoch"] == self.epoch:
                    state["active"] = False
                    state["changes"] += 1
                    owner._write(state)
                shutil.rmtree(owner._path(f"epoch-{self.epoch}"), ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def finish(self) -> None:
        await asyncio.to_thread(self._finish)
