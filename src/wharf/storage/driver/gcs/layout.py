"""Where driver paths live in the bucket: Distribution's layout, plus the objects only wharf
writes beside a file.

A driver path ``/a/b`` is the object ``<rootdirectory>/a/b`` (the root's slashes trimmed,
the path's leading one dropped), as Distribution's gcs driver names it, so a bucket written by
either is read by the other. Directories are implicit: ``/a`` is a directory when some
object's name starts with ``a/``.

Beside a file's object ``<name>``::

    <name>#part.<generation, 16 hex>.<offset, 20 digits>    uploaded bytes not committed
    <name>#compose.<generation, 16 hex>.<n>                 a commit's intermediate object
    <name>#lease                                            the file's lease (``lease``)

``#`` is outside the driver path grammar, so no driver path names them and list and walk
skip them; deleting a file or its directory deletes them with it. Distribution skips them as
well: its purge, catalog and garbage collector pick paths by their components.
"""

from __future__ import annotations

import re

__all__ = ["COMPOSE_MARK", "LEASE_MARK", "PART_MARK", "KeyLayout", "parse_part"]

LEASE_MARK = "#lease"
PART_MARK = "#part."
COMPOSE_MARK = "#compose."
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_PART_RE = re.compile(r"#part\.([0-9a-f]{16})\.(\d{20})")


def parse_part(suffix: str) -> tuple[int, int] | None:
    """(generation, offset) of a part's name suffix (from ``#``); None for any other."""
    match = _PART_RE.fullmatch(suffix)
    return (int(match[1], 16), int(match[2])) if match else None


class KeyLayout:
    """Turns driver paths into object names and back."""

    def __init__(self, rootdirectory: str) -> None:
        root = rootdirectory.strip("/")
        #: The prefix of every object this driver owns: "" or "<root>/".
        self.prefix = root + "/" if root else ""

    def key(self, path: str) -> str:
        """The object name of a file (``/`` gives the root prefix)."""
        return self.prefix + path.lstrip("/")

    def directory(self, path: str) -> str:
        """The prefix of every object below directory ``path``."""
        return self.prefix if path == "/" else self.key(path) + "/"

    def path(self, name: str) -> str | None:
        """The driver path of object ``name``; None outside the root or the grammar."""
        if not name.startswith(self.prefix):
            return None
        rest = name[len(self.prefix) :]
        if not rest or not all(_NAME_RE.fullmatch(part) for part in rest.split("/")):
            return None
        return "/" + rest

    @staticmethod
    def part(key: str, generation: int, offset: int) -> str:
        return f"{key}{PART_MARK}{generation:016x}.{offset:020d}"

    @staticmethod
    def parts_prefix(key: str) -> str:
        return key + PART_MARK

    @staticmethod
    def compose(key: str, generation: int, number: int) -> str:
        return f"{key}{COMPOSE_MARK}{generation:016x}.{number}"

    @staticmethod
    def lease(key: str) -> str:
        return key + LEASE_MARK

    @staticmethod
    def owner(name: str) -> str | None:
        """The file object a part, intermediate or lease object belongs to; None for others."""
        key, mark, _ = name.rpartition("#")
        return key if mark and "/" not in name[len(key) :] else None
