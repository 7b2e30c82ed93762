"""Where the processes of one machine that serve, collect or repair one storage meet.

Every process derives the same names from the storage's identity (the filesystem root's real
path, or the S3 bucket, endpoint and root directory), so a collector or ``wharf check`` run
from a shell finds the change tokens of the registry serving that storage, without being told
where they are. The names live in ``/dev/shm`` (``/tmp`` can be private to a service), one per
storage, whatever number of processes or restarts: nothing is left behind per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from typing import Any

from wharf.coherence.generations import Generations, UncachedGenerations
from wharf.config.model import Config, StorageConfig
from wharf.observability.metrics import WorkerMetrics

__all__ = ["machine_directory", "open_generations", "shared_state_path", "storage_key"]

log = logging.getLogger("wharf.coherence")


def storage_key(storage: StorageConfig) -> str:
    """A short name for the storage ``storage`` describes, the same in every process."""
    parameters = storage.parameters
    if storage.driver == "filesystem":
        identity: dict[str, Any] = {
            "rootdirectory": os.path.realpath(str(parameters.get("rootdirectory", "")))
        }
    else:
        keys = ("bucket", "region", "regionendpoint", "rootdirectory")
        identity = {key: str(parameters.get(key, "")) for key in keys}
    document = json.dumps({"driver": storage.driver, **identity}, sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()[:16]


def machine_directory() -> str:
    """Shared memory when the machine has it, else the temporary directory."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def shared_state_path(storage: StorageConfig) -> str:
    """The change tokens of every process on this machine working on ``storage``."""
    return os.path.join(machine_directory(), f"wharf-state-{storage_key(storage)}")


def open_generations(config: Config, metrics: WorkerMetrics | None = None) -> Generations:
    """The change tokens a process working on ``config``'s storage shares with the others:
    Redis's when configured (every instance), else this machine's, else (in-memory storage,
    which no other process sees) its own. The caller closes it (``aclose``)."""
    if config.redis is not None:
        from wharf.coherence.redis_tokens import RedisGenerations

        return RedisGenerations(config.redis, metrics)
    if config.storage.driver == "inmemory":
        return Generations(None)
    path = shared_state_path(config.storage)
    try:
        return Generations(path)
    except OSError as error:
        log.error(
            "cannot share change tokens in %s (%s): nothing is served from caches", path, error
        )
        return UncachedGenerations()
