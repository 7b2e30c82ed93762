"""Where driver paths live in the bucket: Distribution's s3-aws layout, plus pending objects.

A driver path ``/a/b`` is the key ``<rootdirectory>/a/b`` with the root's trailing slashes
and the key's leading slashes removed (Distribution's ``s3Path``), so a bucket written by
Distribution's s3 driver is read as is, and the other way round. Directories are implicit:
``/a`` is a directory when some key starts with ``a/``.

Pending objects hold the bytes of an uncommitted file that do not yet fill a 5 MiB part
(S3's smallest part but the last). They lie beside the file's key::

    <key>#pending.<offset, 20 digits>

one per ``close`` that left such bytes, named by the file offset of their first byte, so that
a writer in any process can tell which of them continue the multipart upload's parts (see
``writer``). A file's lease is a series of turns beside it the same way (see ``lease``)::

    <key>#turn.<n, 10 digits>

``#`` is outside the driver path grammar, so no driver path can ever name a
pending object, and list and walk skip them. Distribution does not stumble on them either:
it only ever deletes whole upload directories (its prefix delete takes them along), and its
upload purge, catalog and garbage collector pick paths by their ``data``, ``startedat``,
``link`` or ``_uploads`` components, never by listing an upload directory's files.
"""

from __future__ import annotations

import re

__all__ = ["PENDING_MARK", "TURN_MARK", "KeyLayout"]

#: Separates a file's key from the offset of one of its pending objects.
PENDING_MARK = "#pending."
#: Separates a file's key from the number of one of its lease's turns.
TURN_MARK = "#turn."
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_OFFSET_RE = re.compile(r"\d{1,20}")


class KeyLayout:
    """Turns driver paths into keys and back."""

    def __init__(self, rootdirectory: str) -> None:
        self.root = rootdirectory.rstrip("/")
        #: The prefix of every key this driver owns: "" or "<root>/" without leading "/".
        self.prefix = self.key("/")

    def key(self, path: str) -> str:
        """The key of a file (``/`` gives the root prefix)."""
        return (self.root + path).lstrip("/")

    def directory(self, path: str) -> str:
        """The prefix of every key below directory ``path``."""
        return self.prefix if path == "/" else self.key(path) + "/"

    def path(self, key: str) -> str | None:
        """The driver path of ``key``; None when it is outside the root or the path grammar
        (pending objects, directory markers such as ``a/``, foreign names)."""
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix) :]
        if not rest or not all(_NAME_RE.fullmatch(part) for part in rest.split("/")):
            return None
        return "/" + rest

    @staticmethod
    def pending_prefix(key: str) -> str:
        return key + PENDING_MARK

    @staticmethod
    def turn_prefix(key: str) -> str:
        return key + TURN_MARK

    @staticmethod
    def pending_key(key: str, offset: int) -> str:
        # Zero-padded so that the bucket lists them in offset order.
        return f"{key}{PENDING_MARK}{offset:020d}"

    @staticmethod
    def pending_offset(key: str, pending: str) -> int | None:
        """The offset a pending object of ``key`` starts at; None for any other key."""
        offset = pending.removeprefix(key + PENDING_MARK)
        if offset == pending or not _OFFSET_RE.fullmatch(offset):
            return None
        return int(offset)
