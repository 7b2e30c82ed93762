"""Process-wide memory allocator settings for the worker processes.

Downloads allocate and free a megabyte-sized buffer per chunk, and the server hands request
bodies over in buffers of hundreds of kilobytes. glibc serves such sizes with ``mmap`` and
returns them with ``munmap``, so every one faults fresh pages in (and, on a VM with free page
reporting, in the host as well). Raising the mmap threshold keeps
those buffers in the heap and reuses them; raising the trim threshold keeps the heap from
being handed back and faulted in again between batches. Measured on a 2-core VM: page faults
per GB pushed fell from 18,000-74,000 to 1,000-7,000 and server CPU per GB by about a third.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["tune_allocator"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations up to this size come from the heap (glibc's maximum is 32 MiB on 64-bit).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def tune_allocator() -> bool:
    """Apply the settings where the C library is glibc; whether they were applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not applied:
        log.debug("allocator settings not applied")
    return applied
