"""What the server launcher tells the worker processes it starts, through their environment.

uvicorn and granian start the workers, so the launcher cannot hand them arguments: it exports
variables before they start, which the workers inherit with every ``REGISTRY_*`` override.
This module is their one home: the launcher builds a :class:`WorkerEnvironment` and exports it,
and each worker process reads it once, at start, into the same typed object::

    WHARF_CONFIG            absolute path of the config file, empty on the built-in defaults
    WHARF_CONFIG_DIGEST     digest of the parent's Config; a worker that loads another stops
    WHARF_APP_FACTORY       ``module:function`` building the ASGI app from a Config
    WHARF_WORKERS           how many worker processes serve requests
    WHARF_GENERATED_SECRET  without ``http.secret``: a secret of this run for all its workers
                            (the token service's default signing key derives from it)
    WHARF_INSTANCE_ID       one id for this instance's workers (the ``source`` of notifications)
    WHARF_METRICS_DIR       with ``http.debug.addr``: where workers write metric snapshots for
                            the debug listener, a process of its own
    WHARF_DEBUG_FD          the debug listener's socket, in that process
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "APP_FACTORY_ENV",
    "CONFIG_DIGEST_ENV",
    "CONFIG_ENV",
    "DEBUG_FD_ENV",
    "DEFAULT_APP_FACTORY",
    "GENERATED_SECRET_ENV",
    "INSTANCE_ID_ENV",
    "METRICS_DIR_ENV",
    "WORKERS_ENV",
    "WorkerEnvironment",
]

CONFIG_ENV = "WHARF_CONFIG"
CONFIG_DIGEST_ENV = "WHARF_CONFIG_DIGEST"
APP_FACTORY_ENV = "WHARF_APP_FACTORY"
WORKERS_ENV = "WHARF_WORKERS"
GENERATED_SECRET_ENV = "WHARF_GENERATED_SECRET"
INSTANCE_ID_ENV = "WHARF_INSTANCE_ID"
METRICS_DIR_ENV = "WHARF_METRICS_DIR"
DEBUG_FD_ENV = "WHARF_DEBUG_FD"
DEFAULT_APP_FACTORY = "wharf.api.app:create_app"


@dataclass(frozen=True, slots=True)
class WorkerEnvironment:
    config_path: str = ""
    config_digest: str = ""
    app_factory: str = DEFAULT_APP_FACTORY
    workers: int = 1
    generated_secret: str = ""
    instance_id: str = ""
    metrics_dir: str = ""
    debug_fd: int | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> WorkerEnvironment:
        """The environment of this process (``os.environ`` unless given)."""
        env = os.environ if environ is None else environ
        workers = env.get(WORKERS_ENV, "")
        debug_fd = env.get(DEBUG_FD_ENV, "")
        return cls(
            config_path=env.get(CONFIG_ENV, ""),
            config_digest=env.get(CONFIG_DIGEST_ENV, ""),
            app_factory=env.get(APP_FACTORY_ENV) or DEFAULT_APP_FACTORY,
            workers=int(workers) if workers.isdigit() else 1,
            generated_secret=env.get(GENERATED_SECRET_ENV, ""),
            instance_id=env.get(INSTANCE_ID_ENV, ""),
            metrics_dir=env.get(METRICS_DIR_ENV, ""),
            debug_fd=int(debug_fd) if debug_fd.isdigit() else None,
        )

    def exported(self) -> dict[str, str]:
        """The variables that give a worker this environment."""
        variables = {
            CONFIG_ENV: self.config_path,
            CONFIG_DIGEST_ENV: self.config_digest,
            APP_FACTORY_ENV: self.app_factory,
            WORKERS_ENV: str(self.workers),
            INSTANCE_ID_ENV: self.instance_id,
        }
        if self.generated_secret:
            variables[GENERATED_SECRET_ENV] = self.generated_secret
        if self.metrics_dir:
            variables[METRICS_DIR_ENV] = self.metrics_dir
        if self.debug_fd is not None:
            variables[DEBUG_FD_ENV] = str(self.debug_fd)
        return variables
