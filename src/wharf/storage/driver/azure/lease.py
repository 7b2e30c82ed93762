"""Leases of the Azure driver: Azure's own blob leases, on a lease blob beside the file.

Azure grants a blob's lease to one holder at a time (AcquireLease answers 409 to any other),
for 15 to 60 seconds unless renewed, and refuses writes to a leased blob without the lease's
id: exclusion across machines that the storage enforces and expires by its own clock. The
lease is taken on ``<name>#lease`` (see ``layout``), created on first use, not on the file
itself, so that the file can still be replaced or deleted by whoever holds the lease without
passing its id around, and Distribution, which knows nothing of leases, is never refused a
write to a file.

Turns are counted in the lease blob's metadata (``wharfturn``): the holder sets it to one
more than it found, which only the holder can (the write carries the lease id). The count is
read while the lease is being acquired and written only if the blob is unchanged since
(``If-Match``), so taking a lease costs two round trips: acquire, file check and read at
once, then the count. The proposed lease id is chosen here, so a retried acquire whose first
answer was lost is granted again to the same holder.

A holder renews every ``LEASE_RENEW`` seconds and stops trusting the lease (``check``) once
its last renewal is nearly ``LEASE_TTL`` old by its own clock, before Azure would let another
take it. Releasing with ``deleted`` deletes the lease blob too; a directory deleted with a
held lease blob in it breaks that lease first (``AzureDriver.delete``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from azure.core import MatchConditions
from azure.storage.blob import BlobLeaseClient

from wharf.storage.driver.azure.blobs import Blobs
from wharf.storage.driver.azure.client import AzureError, error_code, error_status, is_not_found
from wharf.storage.driver.base import Lease, LeaseBusy, LeaseLost, PathNotFound

__all__ = ["LEASE_RENEW", "LEASE_TTL", "TURN_KEY", "AzureLease", "take_lease"]

log = logging.getLogger("wharf.storage.azure")

#: Seconds a lease lasts unrenewed (Azure takes 15 to 60).
LEASE_TTL = 30
#: Seconds between renewals while held.
LEASE_RENEW = 10.0
#: The lease blob's metadata key counting turns.
TURN_KEY = "wharfturn"
_MARGIN = 5.0


class _Settings:
    """The timings, one object so that tests may shorten them."""

    ttl = LEASE_TTL
    renew = LEASE_RENEW
    margin = _MARGIN


SETTINGS = _Settings()


class AzureLease(Lease):
    __slots__ = ("_blobs", "_client", "_name", "_path", "_renewed", "_renewing", "_state", "_turn")

    def __init__(self, blobs: Blobs, path: str, name: str, client: Any, turn: int) -> None:
        self._blobs = blobs
        self._path = path
        self._name = name
        self._client = client  # the SDK's BlobLeaseClient, holding the lease id
        self._turn = turn
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
                await self._blobs.client.call("RenewLease", self._client.renew)
            except AzureError as error:
                log.warning("could not renew the lease of %s: %s", self._path, error)
                continue
            self._renewed = started

    async def release(self, *, deleted: bool = False) -> None:
        if self._state == "released":
            return
        lost = self._state == "lost"
        self._state = "released"
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        try:
            if deleted:
                # Gone with its directory, or to go now that the file is gone.
                await self._blobs.delete(self._name, lease=self._client.id)
            elif not lost:
                await self._blobs.client.call("ReleaseLease", self._client.release)
        except AzureError as error:
            # Held until it expires: the file is busy for that long, no more.
            log.warning("could not release the lease of %s: %s", self._path, error)


async def _exists(blobs: Blobs, name: str) -> bool:
    try:
        await blobs.head(name)
    except AzureError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


async def _turn_of(blobs: Blobs, name: str) -> tuple[int, str]:
    props = await blobs.client.call(
        "GetBlobProperties", lambda: blobs.blob(name).get_blob_properties()
    )
    count = str((props.metadata or {}).get(TURN_KEY, "0"))
    return (int(count) if count.isdigit() else 0), str(props.etag or "")


async def take_lease(blobs: Blobs, path: str, key: str, name: str) -> AzureLease:
    """The lease of the file at ``path`` (blob ``key``), taken on lease blob ``name``."""
    client = BlobLeaseClient(blobs.blob(name), lease_id=str(uuid.uuid4()))

    async def acquire() -> None:
        await blobs.client.call("AcquireLease", lambda: client.acquire(SETTINGS.ttl))

    for first in (True, False):
        acquired, read, exists = await asyncio.gather(
            acquire(), _turn_of(blobs, name), _exists(blobs, key), return_exceptions=True
        )
        if isinstance(exists, BaseException):
            raise exists
        if not isinstance(acquired, BaseException):
            break
        if not isinstance(acquired, AzureError):
            raise acquired
        if not exists:
            raise PathNotFound(path)
        if error_status(acquired) == 409 or error_code(acquired) == "LeaseAlreadyPresent":
            raise LeaseBusy(path)
        if not (first and is_not_found(acquired)):
            raise acquired
        # The file's first lease: its lease blob is made, by this taker or another.
        await blobs.create(name, b"", {TURN_KEY: "0"})
    if not exists:
        # Its holder deleted it since: a file that is gone is never leased again.
        with contextlib.suppress(AzureError):
            await blobs.delete(name, lease=client.id)
        raise PathNotFound(path)
    try:
        turn, etag = read if not isinstance(read, BaseException) else await _turn_of(blobs, name)
        turn += 1
        await _set_turn(blobs, name, client.id, turn, etag)
    except AzureError as exc:
        if error_status(exc) != 412:
            await _give_back(client, blobs)
            raise
        # Another holder counted its turn after the read: read again, under the lease.
        turn, _ = await _turn_of(blobs, name)
        turn += 1
        await _set_turn(blobs, name, client.id, turn, "")
    return AzureLease(blobs, path, name, client, turn)


async def _set_turn(blobs: Blobs, name: str, lease: str, turn: int, etag: str) -> None:
    conditions: dict[str, Any] = {"lease": lease}
    if etag:
        conditions.update(etag=etag, match_condition=MatchConditions.IfNotModified)
    await blobs.client.call(
        "SetBlobMetadata",
        lambda: blobs.blob(name).set_blob_metadata({TURN_KEY: str(turn)}, **conditions),
    )


async def _give_back(client: Any, blobs: Blobs) -> None:
    with contextlib.suppress(AzureError):
        await blobs.client.call("ReleaseLease", client.release)
