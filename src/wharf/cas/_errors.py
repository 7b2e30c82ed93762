"""The repository's errors::

CASError
 ├── ObjectNotFound   no object with that digest
 └── DigestMismatch   the bytes read or written do not have the digest expected
"""

from __future__ import annotations

__all__ = ["CASError", "DigestMismatch", "ObjectNotFound"]


class CASError(Exception):
    pass


class ObjectNotFound(CASError, KeyError):
    def __init__(self, digest: object) -> None:
        self.digest = str(digest)
        super().__init__(f"no object {digest}")

    def __str__(self) -> str:
        return f"no object {self.digest}"


class DigestMismatch(CASError):
    def __init__(self, expected: object, actual: object) -> None:
        self.expected, self.actual = str(expected), str(actual)
        super().__init__(f"expected {expected}, got {actual}")
