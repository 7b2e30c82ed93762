"""HTTP bodies read from the socket in large pieces, by every httpx client in the process.

httpcore reads a response 64 KiB at a time, and each read passes through anyio, h11 and httpx
before the caller sees it: at blob sizes that per-read cost is most of what a transfer costs
in Python. Measured on one 256 MiB blob streamed from a local docker-registry: 0.43 CPU-s in
64 KiB reads, 0.27 CPU-s in 1 MiB reads (0.33 and 0.20 reading raw bytes), where the socket
alone takes 0.07. A read returns what the socket holds, never waits to fill the piece, so
small answers are not slowed.

httpcore takes the size from a class attribute of its HTTP/1.1 connection, read on every
read: setting it once serves every pool, proxied or not, TLS or not. The upstream clients
(registry mirror, Swift, GCS) call :func:`use_large_reads` when they are made.
"""

from __future__ import annotations

import httpcore

__all__ = ["READ_SIZE", "use_large_reads"]

#: Bytes asked of the socket per read of a response.
READ_SIZE = 1 << 20


def use_large_reads() -> None:
    """Make every httpx connection of this process read up to ``READ_SIZE`` at once."""
    if httpcore.AsyncHTTP11Connection.READ_NUM_BYTES < READ_SIZE:
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE
