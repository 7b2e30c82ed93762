"""Value conversions at the library's boundary: strings become validated value types."""

from __future__ import annotations

from wharf.reference import Digest, RepositoryName, Tag, parse_reference

__all__ = ["as_digest", "as_name", "as_reference", "as_tag"]


def as_digest(value: str | Digest) -> Digest:
    return value if isinstance(value, Digest) else Digest.parse(value)


def as_tag(value: str | Tag) -> Tag:
    return value if isinstance(value, Tag) else Tag(value)


def as_name(value: str | RepositoryName) -> RepositoryName:
    return value if isinstance(value, RepositoryName) else RepositoryName(value)


def as_reference(value: str | Tag | Digest) -> Tag | Digest:
    return value if isinstance(value, Tag | Digest) else parse_reference(value)
