"""The access-control contract between the HTTP layer and the auth backends.

The HTTP layer works out which accesses a request needs (from its route and method) and asks
the configured controller once per request. A controller answers with the caller's identity,
or raises ``Unauthorized`` (with a ``WWW-Authenticate`` challenge in its headers) when the
caller must authenticate, or ``Denied`` when it is authenticated but may not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Access", "AccessController", "Identity"]


@dataclass(frozen=True, slots=True)
class Access:
    """One permission: ``repository:<name>:pull`` or ``registry:catalog:*``."""

    type: str  # repository | registry
    name: str
    action: str  # pull | push | delete | *

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{self.action}"


@dataclass(frozen=True, slots=True)
class Identity:
    name: str  # "" for an anonymous caller
    granted: frozenset[Access] = field(default_factory=frozenset)


class AccessController(Protocol):
    async def authorize(self, headers: Mapping[str, str], accesses: Sequence[Access]) -> Identity:
        """The caller's identity when it holds every access in ``accesses``."""
        ...
