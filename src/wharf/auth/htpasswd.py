"""``auth.htpasswd``: users and bcrypt hashes from an Apache htpasswd file.

Only bcrypt entries count, as in Distribution (``htpasswd -B``); other formats are logged and
ignored. The file is re-read when its modification time, size or inode change (checked at
most once a second), so users can be added or removed without a restart; a file that
disappears lets nobody in until it is back.

bcrypt is slow on purpose, so verification runs in a thread, at most a few at a time, and an
unknown user costs the same as a wrong password (it is checked against a dummy hash).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import bcrypt

from wharf.auth.base import Access, Identity
from wharf.auth.challenge import denied, quote, unauthorized
from wharf.auth.credentials import basic_credentials
from wharf.auth.rules import AccessRules
from wharf.config.load import ConfigError

__all__ = ["HtpasswdController", "HtpasswdFile"]

log = logging.getLogger("wharf.auth")

_BCRYPT = re.compile(rb"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
#: bcrypt reads 72 bytes of a password; Go's and Apache's implementations ignore the rest.
_BCRYPT_MAX_PASSWORD = 72
#: Concurrent verifications; more would only queue on the cores and slow every request.
_CONCURRENT_CHECKS = max(2, os.cpu_count() or 1)
_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stamp: tuple[int, int, int] | None  # (mtime_ns, size, inode); None: the file is missing
    entries: Mapping[str, bytes]
    dummy: bytes  # a hash of a random password, at the file's usual cost


class HtpasswdFile:
    """The users of one htpasswd file, re-read when it changes."""

    def __init__(
        self, path: str, *, check_interval: float = 1.0, cache_seconds: float = 30.0
    ) -> None:
        self.path = path
        self.check_interval = check_interval
        self.cache_seconds = cache_seconds
        try:
            stamp = _stamp(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self._snapshot = _read(path, stamp, None)
        self._checked = time.monotonic()
        self._reload = asyncio.Lock()
        self._slots = asyncio.Semaphore(_CONCURRENT_CHECKS)
        # Successful verifications, by a keyed hash of user and password, until a deadline.
        # Safe to keep: a wrong password never matches an entry (guessing still pays for
        # bcrypt), no password is kept in clear, entries live seconds, and every entry is
        # dropped when the file changes, so a removed user or changed password takes effect
        # at the next check of the file. It spares pulls a bcrypt per blob.
        self._cache: dict[bytes, float] = {}
        self._cache_key = secrets.token_bytes(32)

    def __contains__(self, user: str) -> bool:
        return user in self._snapshot.entries

    def fingerprint(self, user: str) -> str | None:
        """A digest of the user's entry, which changes with the password; None if unknown."""
        entry = self._snapshot.entries.get(user)
        return None if entry is None else hashlib.sha256(entry).hexdigest()[:32]

    async def refresh(self) -> None:
        """Re-read the file if it changed (looked at once per ``check_interval``)."""
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return
        self._checked = now
        try:
            stamp: tuple[int, int, int] | None = _stamp(self.path)
        except OSError:
            stamp = None
        if stamp == self._snapshot.stamp:
            return
        async with self._reload:
            previous = self._snapshot
            if stamp == previous.stamp:
                return  # another request re-read it meanwhile
            self._snapshot = await asyncio.to_thread(_read, self.path, stamp, previous)
            self._cache.clear()

    async def verify(self, user: str, password: str) -> bool:
        await self.refresh()
        secret = password.encode("utf-8")[:_BCRYPT_MAX_PASSWORD]
        key = hmac.new(
            self._cache_key, len(user).to_bytes(4, "big") + user.encode() + secret, "sha256"
        ).digest()
        now = time.monotonic()
        deadline = self._cache.get(key)
        if deadline is not None and deadline > now:
            return True
        snapshot = self._snapshot
        stored = snapshot.entries.get(user)
        async with self._slots:
            matches = await asyncio.to_thread(_check, secret, stored or snapshot.dummy)
        if not matches or stored is None:
            return False
        if snapshot is self._snapshot:  # not re-read meanwhile
            if len(self._cache) >= _CACHE_SIZE:
                self._cache = {k: v for k, v in self._cache.items() if v > now}
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
            self._cache[key] = now + self.cache_seconds
        return True


class HtpasswdController:
    """Basic authentication against an htpasswd file, as Distribution's ``htpasswd``.

    Every user may do everything, unless wharf's own ``access`` rules are configured: then a
    user lacking an access gets 403 DENIED, and callers without credentials get what the
    rules grant anonymously.
    """

    def __init__(self, realm: str, users: HtpasswdFile, rules: AccessRules | None = None):
        self.users = users
        self.rules = rules
        self.challenge = f"Basic realm={quote(realm)}"

    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Identity:
        credentials = basic_credentials(headers)
        if credentials is None:
            if self.rules is not None and accesses and self._allowed(None, accesses):
                return Identity("", frozenset(accesses))
            raise unauthorized(self.challenge, accesses)
        user, password = credentials
        if not await self.users.verify(user, password):
            raise unauthorized(self.challenge, accesses)
        if self.rules is not None and not self._allowed(user, accesses):
            raise denied(accesses)
        return Identity(user, frozenset(accesses))

    def _allowed(self, user: str | None, accesses: Sequence[Access]) -> bool:
        assert self.rules is not None
        return all(self.rules.allows(user, access) for access in accesses)


def _stamp(path: str) -> tuple[int, int, int]:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size, info.st_ino


def _read(path: str, stamp: tuple[int, int, int] | None, previous: _Snapshot | None) -> _Snapshot:
    entries: dict[str, bytes] = {}
    if stamp is not None:
        try:
            with open(path, "rb") as stream:
                lines = stream.read().splitlines()
        except OSError as exc:
            log.error("htpasswd %s unreadable, nobody may log in: %s", path, exc)
            lines = []
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            user, _, hashed = line.partition(b":")
            if not _BCRYPT.fullmatch(hashed):
                log.warning("htpasswd %s line %d: not a bcrypt entry, ignored", path, number)
                continue
            entries[user.decode("utf-8", "replace")] = hashed
    else:
        log.error("htpasswd %s is missing, nobody may log in", path)
    costs = Counter(int(hashed[4:6]) for hashed in entries.values())
    cost = min(max(costs.most_common(1)[0][0], 4), 16) if costs else 10
    if previous is not None and previous.dummy[4:6] == b"%02d" % cost:
        dummy = previous.dummy
    else:
        # The most common cost, so that an unknown user takes as long as a typical one.
        dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
    return _Snapshot(stamp, entries, dummy)


def _check(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False
