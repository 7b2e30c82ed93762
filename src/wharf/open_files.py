"""The open-files limit: raised to the hard limit at start, and the connection cap it allows.

Every connection takes a file descriptor, and a request may take another (a blob read from the
filesystem, an upload's file). Python keeps the soft limit it was started with, often 1024,
where a Go program (Distribution) raises it to the hard limit at start: a few thousand idle
connections then made accept fail for every client of wharf with EMFILE, and none of
Distribution's. Raised before the workers start, the limit is theirs too (they inherit it).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

__all__ = [
    "MAX_CONNECTIONS_CEILING",
    "OpenFiles",
    "default_max_connections",
    "fits",
    "raise_limit",
]

#: The derived cap of connections per worker, however many files are allowed: a worker is one
#: Python thread, and past a few thousand connections it answers each of them too slowly.
MAX_CONNECTIONS_CEILING = 4096
#: Descriptors a worker needs besides its connections' (listening socket, logs, shared state,
#: Redis, metrics, the files of its storage threads).
_RESERVED = 64
#: Descriptors one connection may hold: its socket, and a file its request reads or writes.
_PER_CONNECTION = 2


@dataclass(frozen=True, slots=True)
class OpenFiles:
    limit: int  # the soft limit now; resource.RLIM_INFINITY when unlimited
    hard: int
    was: int  # the soft limit wharf was started with
    error: str = ""  # why it could not be raised

    def __str__(self) -> str:
        text = _show(self.limit)
        if self.limit != self.was:
            return f"{text} (raised from {_show(self.was)})"
        if self.limit != self.hard:
            return f"{text} (hard limit {_show(self.hard)})"
        return f"{text} (the hard limit)"


def raise_limit() -> OpenFiles:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit, as Go does at start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return OpenFiles(limit=soft, hard=hard, was=soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        # macOS refuses an unlimited soft limit; the limit stays as it was.
        return OpenFiles(limit=soft, hard=hard, was=soft, error=str(exc))
    return OpenFiles(limit=hard, hard=hard, was=soft)


def default_max_connections(limit: int) -> int:
    """Connections per worker that leave each of them a file for its request."""
    if limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS_CEILING
    return max(1, min(MAX_CONNECTIONS_CEILING, (limit - _RESERVED) // _PER_CONNECTION))


def fits(max_connections: int, limit: int) -> bool:
    """Whether that many connections (each with a file) fit in the open-files limit."""
    if limit == resource.RLIM_INFINITY:
        return True
    return max_connections * _PER_CONNECTION + _RESERVED <= limit


def _show(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
