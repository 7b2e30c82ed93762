"""Where driver paths live in the container: Distribution's layout, plus lease blobs and the
names of staged blocks.

A driver path ``/a/b`` is the blob ``<rootdirectory>/a/b`` with the root's trailing slashes
and the name's leading slashes removed, as Distribution 3 names it (``blobName``), so a
container written by Distribution's azure driver is read as is, and the other way round.
Distribution 2.x kept the leading slash (``/docker/registry/v2/...``): ``legacyrootprefix``
names blobs that way. Directories are implicit: ``/a`` is a directory when some blob's name
starts with ``a/``.

A file's lease is a blob of its own beside it (see ``lease``)::

    <name>#lease

``#`` is outside the driver path grammar, so no driver path can name it, and list and walk
skip it. Distribution never stumbles on one: it deletes whole upload directories (a lease
blob that is held at that moment makes that delete fail until it expires, as the lease
wants), and its purge, catalog and garbage collector pick paths by their components.

The bytes of an uncommitted file are blocks staged on the file's own blob (see ``writer``),
each named by the writer's generation and the file offset of its first byte::

    wharf-<generation, 16 hex digits>-<offset, 20 digits>      (base64, as Azure wants)

so that any process can tell, from the blob's uncommitted block list alone, which blocks
form the file and in what order.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["LEASE_MARK", "BlobLayout", "block_id", "parse_block_id"]

#: Separates a file's blob name from its lease blob's suffix.
LEASE_MARK = "#lease"
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_BLOCK_RE = re.compile(r"wharf-([0-9a-f]{16})-(\d{20})")


def block_id(generation: int, offset: int) -> str:
    """The id of the block a writer of ``generation`` stages at ``offset``."""
    return base64.b64encode(f"wharf-{generation:016x}-{offset:020d}".encode()).decode()


def parse_block_id(encoded: str) -> tuple[int, int] | None:
    """(generation, offset) of a block id this driver made; None for any other."""
    try:
        match = _BLOCK_RE.fullmatch(base64.b64decode(encoded, validate=True).decode("ascii"))
    except (binascii.Error, UnicodeDecodeError):
        return None
    if match is None:
        return None
    return int(match[1], 16), int(match[2])


class BlobLayout:
    """Turns driver paths into blob names and back."""

    def __init__(self, rootdirectory: str, *, legacy: bool = False) -> None:
        self.root = rootdirectory.rstrip("/")
        self.legacy = legacy
        #: The prefix of every blob this driver owns: "" or "<root>/" (with a leading "/"
        #: in the legacy layout).
        self.prefix = self.key("/")

    def key(self, path: str) -> str:
        """The blob name of a file (``/`` gives the root prefix)."""
        name = (self.root + path).lstrip("/")
        return "/" + name if self.legacy else name

    def directory(self, path: str) -> str:
        """The prefix of every blob below directory ``path``."""
        return self.prefix if path == "/" else self.key(path) + "/"

    def path(self, name: str) -> str | None:
        """The driver path of blob ``name``; None outside the root or the path grammar
        (lease blobs, directory markers such as ``a/``, foreign names)."""
        if not name.startswith(self.prefix):
            return None
        rest = name[len(self.prefix) :]
        if not rest or not all(_NAME_RE.fullmatch(part) for part in rest.split("/")):
            return None
        return "/" + rest

    @staticmethod
    def lease_name(key: str) -> str:
        return key + LEASE_MARK

    @staticmethod
    def leased_key(name: str) -> str | None:
        """The blob whose lease blob is ``name``; None when it is no lease blob."""
        return name.removesuffix(LEASE_MARK) if name.endswith(LEASE_MARK) else None
