"""Object names, as Distribution 2.x's ``swift`` driver gives them, byte for byte.

- A file at ``/a/b`` is the object ``<prefix>/files/a/b`` (leading and trailing ``/`` of the
  whole name trimmed, nothing else: a prefix ``reg/`` gives ``reg//files/...`` as in
  Distribution).
- A file written through a writer is a Dynamic Large Object: a zero-byte manifest at its name
  with ``X-Object-Manifest: <container>/<segments path>``, and its bytes in segments
  ``<segments path>/<n, 16 digits>`` numbered from 1, where the segments path is
  ``<prefix>/segments/<h[:3]>/<h[3:]>`` for ``h`` the SHA-1 of the file's path and 32 random
  bytes in hex. Swift serves the concatenation of the objects under the segments path.
  Distribution meant the same, but its ``h`` is the hex of the path, the random bytes and
  the SHA-1 of nothing (Go's ``hash.Sum(b)`` appends to ``b``), so its names grow with the
  path and pass Swift's 1024-byte limit for long repository names; wharf keeps the shape
  with 40 digits. Neither registry parses segment names: each finds the other's segments
  through the manifests.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["Layout", "segment_name"]


def segment_name(segments: str, number: int) -> str:
    return f"{segments}/{number:016d}"


class Layout:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        #: Name of the root directory (``files`` below the prefix); its children start with
        #: ``files_base + "/"``.
        self.files_base = self.name("/")
        self.segments_base = (prefix + "/segments").strip("/")

    def name(self, path: str) -> str:
        """The object of the file at ``path``."""
        return (self.prefix + "/files" + path).rstrip("/").lstrip("/")

    def directory(self, path: str) -> str:
        """The name prefix of everything below the directory ``path``."""
        return self.name(path) + "/"

    def path(self, name: str) -> str | None:
        """The file path of an object, None for objects outside the files tree."""
        base = self.files_base + "/"
        if not name.startswith(base) or len(name) == len(base):
            return None
        return "/" + name[len(base) :].rstrip("/")

    def new_segments(self, path: str) -> str:
        digest = hashlib.sha1(path.encode() + os.urandom(32), usedforsecurity=False).hexdigest()
        return (self.prefix + "/segments/" + digest[:3] + "/" + digest[3:]).rstrip("/").lstrip("/")

    def segments_group(self, name: str) -> str | None:
        """The segments path a segment object belongs to, None for other objects."""
        base = self.segments_base + "/"
        if not name.startswith(base):
            return None
        parts = name[len(base) :].split("/")
        if len(parts) != 3:
            return None
        return base + parts[0] + "/" + parts[1]
