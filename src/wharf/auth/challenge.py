"""The 401 and 403 answers every controller gives, shaped as Distribution's."""

from __future__ import annotations

from collections.abc import Sequence

from wharf.auth.base import Access
from wharf.errors import Denied, Unauthorized

__all__ = ["denied", "quote", "unauthorized"]


def quote(value: str) -> str:
    """An RFC 9110 quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _detail(accesses: Sequence[Access]) -> list[dict[str, str]] | None:
    # Distribution puts the access records it checked in the error detail.
    if not accesses:
        return None
    return [
        {"Type": access.type, "Class": "", "Name": access.name, "Action": access.action}
        for access in accesses
    ]


def unauthorized(challenge: str, accesses: Sequence[Access]) -> Unauthorized:
    return Unauthorized(_detail(accesses), headers={"WWW-Authenticate": challenge})


def denied(accesses: Sequence[Access]) -> Denied:
    return Denied(_detail(accesses))
