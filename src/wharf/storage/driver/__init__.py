"""The storage driver contract and its implementations.

A driver stores opaque byte strings at slash-separated paths. It knows nothing of digests,
repositories or manifests; ``wharf.storage.paths`` decides what goes where.
"""

from wharf.storage.driver.base import (
    FILES_A_BATCH,
    DriverError,
    FileInfo,
    FileReader,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    Lease,
    LeaseBusy,
    LeaseLost,
    Listings,
    PathNotFound,
    ResumeState,
    StorageDriver,
    UnsupportedMethod,
)

__all__ = [
    "FILES_A_BATCH",
    "DriverError",
    "FileInfo",
    "FileReader",
    "FileWriter",
    "InvalidOffset",
    "InvalidPath",
    "Lease",
    "LeaseBusy",
    "LeaseLost",
    "Listings",
    "PathNotFound",
    "ResumeState",
    "StorageDriver",
    "UnsupportedMethod",
]
