"""Leases of the S3 driver: numbered turns, each taken by creating its object if absent.

S3 has no locks, but it creates an object only if none is there (``If-None-Match: *``, which
AWS, MinIO, Ceph, moto and Swift's s3api enforce), so exactly one of several writers creating
the same key succeeds. A file's lease is a sequence of turns, one object each beside the
file's key (see ``layout``)::

    <key>#turn.<n, 10 digits>     "held <holder>" while held, empty once released

Taking a lease creates the object of the turn after the latest: turn ``n + 1`` exists only
once, so two takers never both succeed, and a taker that held turn ``n`` itself and now
creates ``n + 1`` knows without listing that nobody held the lease in between (``after``).
A taker that does not know lists the turns: the latest one, when held, is busy, unless it was
not renewed for ``LEASE_TTL`` by the storage's own clock (its Last-Modified against the Date of
the listing's answer), which means its holder died. A holder renews its turn every
``LEASE_RENEW`` seconds, and stops trusting the lease (``check``) once its last renewal is
nearly ``LEASE_TTL`` old by its own clock, before anyone else may take over.

The turns of a file are deleted with its directory. The file is checked after the turn is
created: once its holder deleted it, a turn taken afterwards has no file and is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from wharf.storage.driver.base import Lease, LeaseBusy, LeaseLost, PathNotFound
from wharf.storage.driver.s3.bucket import Bucket
from wharf.storage.driver.s3.client import S3Error, error_status, is_not_found, is_retryable
from wharf.storage.driver.s3.layout import KeyLayout

__all__ = ["LEASE_RENEW", "LEASE_TTL", "S3Lease", "take_lease"]

log = logging.getLogger("wharf.storage.s3")

#: Seconds a turn stays held without renewal (by the storage's clock).
LEASE_TTL = 30.0
#: Seconds between renewals while held.
LEASE_RENEW = 10.0
#: A holder stops trusting its lease this long before others may take it (its own clock
#: runs from before the renewal's request, the storage's from when it stored it).
_MARGIN = 5.0
_RELEASED = b""


class _Settings:
    """The timings, one object so that tests may shorten them."""

    ttl = LEASE_TTL
    renew = LEASE_RENEW
    margin = _MARGIN


SETTINGS = _Settings()


class S3Lease(Lease):
    __slots__ = ("_bucket", "_content", "_key", "_path", "_renewed", "_renewing", "_state", "_turn")

    def __init__(self, bucket: Bucket, path: str, key: str, turn: int, content: bytes) -> None:
        self._bucket = bucket
        self._path = path
        self._key = key
        self._turn = turn
        self._content = content
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
                await self._bucket.put(self._key, self._content, pending=True)
            except S3Error as error:
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
        if deleted or lost:
            return
        try:
            await self._bucket.put(self._key, _RELEASED, pending=True)
        except S3Error as error:
            # The turn stays held until it expires: the file is busy for that long, no more.
            log.warning("could not release the lease of %s: %s", self._path, error)


def turn_key(key: str, turn: int) -> str:
    return f"{KeyLayout.turn_prefix(key)}{turn:010d}"


async def _create(bucket: Bucket, key: str, content: bytes) -> bool:
    """Create ``key`` unless it exists; whether this call created it. A retried create
    whose first answer was lost finds its own content there."""
    args: dict[str, Any] = {"Bucket": bucket.name, "Key": key, "Body": content, "IfNoneMatch": "*"}
    args.update(bucket.encryption)
    for attempt in range(bucket.client.retry.attempts):
        try:
            await bucket.client.call(
                "PutObject", lambda: bucket.s3.put_object(**args), idempotent=False
            )
            return True
        except S3Error as exc:
            if error_status(exc) in (409, 412):  # 409: a concurrent create of the same key
                if attempt == 0:
                    return False
                try:
                    return await bucket.get(key) == content
                except S3Error:
                    return False
            if not is_retryable(exc) or attempt + 1 >= bucket.client.retry.attempts:
                raise
            await asyncio.sleep(bucket.client.retry.delay(attempt))
    return False  # pragma: no cover - the loop returns or raises


async def _latest(bucket: Bucket, key: str) -> tuple[int, bool]:
    """The latest turn of ``key`` (0 when none) and whether it is held and unexpired."""
    prefix = KeyLayout.turn_prefix(key)
    latest: Any = None
    now = datetime.now(UTC)
    token = ""
    while True:
        args: dict[str, Any] = {"Bucket": bucket.name, "Prefix": prefix}
        if token:
            args["ContinuationToken"] = token

        def list_turns(args: dict[str, Any] = args) -> Any:
            return bucket.s3.list_objects_v2(**args)

        response = await bucket.client.call("ListObjectsV2", list_turns)
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                now = parsedate_to_datetime(date)
        for entry in response.get("Contents", []):
            if entry["Key"][len(prefix) :].isdigit():
                latest = entry
        token = response.get("NextContinuationToken", "")
        if not response.get("IsTruncated") or not token:
            break
    if latest is None:
        return 0, False
    turn = int(latest["Key"][len(prefix) :])
    modified = latest.get("LastModified")
    held = latest["Size"] > 0 and (
        modified is None or (now - modified).total_seconds() < SETTINGS.ttl
    )
    return turn, held


async def _exists(bucket: Bucket, key: str) -> bool:
    try:
        await bucket.head(key)
    except S3Error as exc:
        if is_not_found(exc):
            return False
        raise
    return True


async def take_lease(bucket: Bucket, layout: KeyLayout, path: str, after: int | None) -> S3Lease:
    key = layout.key(path)
    content = b"held " + secrets.token_hex(16).encode()
    turn = None
    if after is not None and await _create(bucket, turn_key(key, after + 1), content):
        turn = after + 1
    if turn is None:
        latest, held = await _latest(bucket, key)
        if held or not await _create(bucket, turn_key(key, latest + 1), content):
            raise LeaseBusy(path)
        turn = latest + 1
    if not await _exists(bucket, key):
        # A file deleted with its directory took its turns along: this one is a leftover.
        with contextlib.suppress(*S3Error):  # else deleted with the directory when that goes
            await bucket.delete_key(turn_key(key, turn))
        raise PathNotFound(path)
    return S3Lease(bucket, path, turn_key(key, turn), turn, content)
