"""Leases of the GCS driver: one lease object beside the file, changed only by generation.

GCS writes an object only if its generation is the one named (``ifGenerationMatch``; ``0``
for an object that must not exist yet), and every write makes a new generation: of several
writers naming the same generation, exactly one succeeds, the others get 412. A file's lease
is the object ``<name>#lease`` (see ``layout``), empty, its state in its metadata::

    wharfturn    the turns taken so far, this one included
    wharfholder  a random id of the holder; empty once released

Taking the lease reads the lease object, and writes it back with one more turn and a
holder, conditional on the generation read (``0`` when there was none): when it is
released, or held but not renewed for ``LEASE_TTL`` by the storage's own clock (its
``updated`` against the Date of the answer), which means its holder died; LeaseBusy when it
is held, or when another taker's write came first. The holder renews it every
``LEASE_RENEW`` seconds with the same conditional write (a 412 means another took it over:
the lease is lost), and stops trusting it (``check``) once its last renewal is nearly
``LEASE_TTL`` old by its own clock, before anyone else may take over.

A conditional write whose answer was lost is not repeated blindly: the lease object is read
back, and it landed if it names this holder. The file is checked after the lease is taken:
once its holder deleted it, a lease taken afterwards has no file and is given back. Releasing
with ``deleted`` deletes the lease object; deleting the file's directory deletes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from datetime import datetime

import httpx

from wharf.storage.driver.base import Lease, LeaseBusy, LeaseLost, PathNotFound
from wharf.storage.driver.gcs.client import GCSError, is_retryable
from wharf.storage.driver.gcs.layout import KeyLayout
from wharf.storage.driver.gcs.objects import ObjectInfo, Objects

__all__ = ["HOLDER_KEY", "LEASE_RENEW", "LEASE_TTL", "TURN_KEY", "GCSLease", "take_lease"]

log = logging.getLogger("wharf.storage.gcs")

#: Seconds a lease stays held without renewal (by the storage's clock).
LEASE_TTL = 30.0
#: Seconds between renewals while held.
LEASE_RENEW = 10.0
TURN_KEY = "wharfturn"
HOLDER_KEY = "wharfholder"
_MARGIN = 5.0


class _Settings:
    """The timings, one object so that tests may shorten them."""

    ttl = LEASE_TTL
    renew = LEASE_RENEW
    margin = _MARGIN


SETTINGS = _Settings()


class _Lost(Exception):
    """The conditional write found another generation."""


async def _write(
    objects: Objects, name: str, turn: int, holder: str, generation: int, me: str
) -> ObjectInfo:
    """Write the lease object with ``turn`` and ``holder`` if its generation is
    ``generation``; _Lost if it is not."""
    metadata = {TURN_KEY: str(turn), HOLDER_KEY: holder}
    attempts = objects.client.retry.attempts
    for attempt in range(attempts):
        try:
            info, _ = await objects.create(name, b"", metadata, generation=generation)
            return info
        except (GCSError, httpx.TransportError) as exc:
            if isinstance(exc, GCSError) and exc.status == 412:
                raise _Lost from exc
            if not is_retryable(exc) or attempt + 1 >= attempts:
                raise
        # The answer was lost or refused: did the write land?
        await asyncio.sleep(objects.client.retry.delay(attempt))
        try:
            found, _ = await objects.info(name)
        except GCSError as exc:
            if exc.status != 404:
                raise
            if generation:  # it was there, it is gone: deleted with its file
                raise _Lost from exc
            continue
        if found.metadata.get(HOLDER_KEY) == me and found.metadata.get(TURN_KEY) == str(turn):
            return found
        if found.generation != generation:
            raise _Lost
    raise GCSError("InsertObject", 0, "no answer")  # pragma: no cover - the loop raises


class GCSLease(Lease):
    __slots__ = (
        "_generation", "_holder", "_name", "_objects", "_path", "_renewed", "_renewing",
        "_state", "_turn",
    )  # fmt: skip

    def __init__(
        self, objects: Objects, path: str, name: str, turn: int, holder: str, generation: int
    ) -> None:
        self._objects = objects
        self._path = path
        self._name = name
        self._turn = turn
        self._holder = holder
        self._generation = generation
        self._renewed = time.monotonic()
        self._state = "held"
        self._renewing = asyncio.get_running_loop().create_task(self._renew_forever())

    @property
    def turn(self) -> int | None:
        return self._turn

    def check(self) -> None:
        if self._state == "lost" or (
            self._state == "held"
            and time.monotonic() - self._renewed > SETTINGS.ttl - SETTINGS.margin
        ):
            self._state = "lost"
            raise LeaseLost(self._path)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(SETTINGS.renew)
            started = time.monotonic()
            try:
                info = await _write(
                    self._objects, self._name, self._turn, self._holder, self._generation,
                    self._holder,
                )  # fmt: skip
            except _Lost:
                log.warning("lost the lease of %s: another holder took it", self._path)
                self._state = "lost"
                return
            except (GCSError, httpx.HTTPError) as error:
                log.warning("could not renew the lease of %s: %s", self._path, error)
                continue
            self._generation = info.generation
            self._renewed = started

    async def release(self, *, deleted: bool = False) -> None:
        if self._state == "released":
            return
        lost = self._state == "lost"
        self._state = "released"
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        if lost:
            return
        try:
            if deleted:
                await self._objects.delete(self._name)
            else:
                await _write(
                    self._objects, self._name, self._turn, "", self._generation, self._holder
                )
        except (GCSError, httpx.HTTPError, _Lost) as error:
            # Held until it expires: the file is busy for that long, no more.
            log.warning("could not release the lease of %s: %s", self._path, error)


def _free(info: ObjectInfo, now: datetime | None) -> bool:
    if not info.metadata.get(HOLDER_KEY):
        return True
    if info.modified is None or now is None:
        return False
    return (now - info.modified).total_seconds() >= SETTINGS.ttl


async def take_lease(objects: Objects, path: str, key: str) -> GCSLease:
    """The lease of the file at ``path`` (object ``key``)."""
    name = KeyLayout.lease(key)
    holder = secrets.token_hex(16)
    try:
        found, now = await objects.info(name)
        counted = found.metadata.get(TURN_KEY, "")
        turn = int(counted) if counted.isdigit() else 0
        if not _free(found, now):
            if not await objects.exists(key):
                raise PathNotFound(path)
            raise LeaseBusy(path)
        generation = found.generation
    except GCSError as exc:
        if exc.status != 404:
            raise
        turn, generation = 0, 0
    try:
        info = await _write(objects, name, turn + 1, holder, generation, holder)
    except _Lost:
        raise LeaseBusy(path) from None
    if not await objects.exists(key):
        # Its holder deleted it since: a file that is gone is never leased again.
        with contextlib.suppress(GCSError, httpx.HTTPError):
            await objects.delete(name)
        raise PathNotFound(path)
    return GCSLease(objects, path, name, turn + 1, holder, info.generation)
