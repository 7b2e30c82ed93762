"""Build the configured storage driver, wrapped once in CheckedDriver.

Each driver registers a factory in ``_FACTORIES`` under its configuration name; a factory takes
the ``parameters`` mapping of the ``storage`` section, rejects what it does not know with a
one-line ValueError, and returns the bare driver. It also registers in ``_CHECKS`` a check of
those parameters that builds nothing and touches no storage (its parse, typically):
``wharf serve`` runs it in the parent process through :func:`validate_storage`, so that a bad
parameter stops the start with one line instead of failing in every worker. A driver whose
SDK is an optional extra of the distribution names it in ``DRIVER_EXTRAS`` and imports the SDK
in its factory only.

The configured storage middleware (``middleware.storage``) wrap the bare driver, in order,
inside ``CheckedDriver``; ``validate_storage`` parses their options too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wharf.config.model import StorageConfig
from wharf.config.sources import ConfigError
from wharf.storage.driver.base import StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.filesystem import (
    DEFAULT_MAX_THREADS,
    DEFAULT_ROOT_DIRECTORY,
    FilesystemDriver,
)
from wharf.storage.driver.inmemory import InMemoryDriver
from wharf.storage.driver.middleware import apply_middleware, check_middleware

__all__ = [
    "DRIVER_EXTRAS",
    "DriverFactory",
    "ParameterCheck",
    "check_parameters",
    "create_driver",
    "validate_storage",
]

DriverFactory = Callable[[Mapping[str, Any]], StorageDriver]
#: Parses a driver's parameters as its factory would: a one-line ValueError naming the first
#: unknown or bad one; no I/O.
ParameterCheck = Callable[[Mapping[str, Any]], object]

#: driver -> (the extra installing its SDK, a module of that SDK), checked at start (``extras``).
DRIVER_EXTRAS: dict[str, tuple[str, str]] = {
    "azure": ("azure", "azure.storage.blob"),
    "gcs": ("gcs", "google.auth"),
    "s3": ("s3", "boto3"),
}


def check_parameters(driver: str, parameters: Mapping[str, Any], allowed: set[str]) -> None:
    """ValueError naming the first parameter of ``parameters`` not in ``allowed``."""
    for key in parameters:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ValueError(
                f"unknown parameter {key!r} for storage driver {driver!r} (allowed: {known})"
            )


def _inmemory(parameters: Mapping[str, Any]) -> StorageDriver:
    check_parameters("inmemory", parameters, set())
    return InMemoryDriver()


def _s3(parameters: Mapping[str, Any]) -> StorageDriver:
    # Imported here: boto3 takes ~0.15 s to import, which filesystem registries need not pay.
    from wharf.storage.driver.s3.driver import S3Driver

    return S3Driver.from_parameters(parameters)


def _s3_parameters(parameters: Mapping[str, Any]) -> object:
    from wharf.storage.driver.s3.params import parse_parameters

    return parse_parameters(parameters)


def _azure(parameters: Mapping[str, Any]) -> StorageDriver:
    # Imported here: the Azure SDK is an optional extra, and slow to import.
    from wharf.storage.driver.azure.driver import AzureDriver

    return AzureDriver.from_parameters(parameters)


def _azure_parameters(parameters: Mapping[str, Any]) -> object:
    from wharf.storage.driver.azure.params import parse_parameters

    return parse_parameters(parameters)


def _swift(parameters: Mapping[str, Any]) -> StorageDriver:
    from wharf.storage.driver.swift.driver import SwiftDriver

    return SwiftDriver.from_parameters(parameters)


def _swift_parameters(parameters: Mapping[str, Any]) -> object:
    from wharf.storage.driver.swift.params import parse_parameters

    return parse_parameters(parameters)


def _gcs(parameters: Mapping[str, Any]) -> StorageDriver:
    from wharf.storage.driver.gcs.driver import GCSDriver

    return GCSDriver.from_parameters(parameters)


def _gcs_parameters(parameters: Mapping[str, Any]) -> object:
    from wharf.storage.driver.gcs.params import parse_parameters

    return parse_parameters(parameters)


def _filesystem(parameters: Mapping[str, Any]) -> StorageDriver:
    root, threads, direct = _filesystem_parameters(parameters)
    return FilesystemDriver(root, maxthreads=threads, directwrites=direct)


def _filesystem_parameters(parameters: Mapping[str, Any]) -> tuple[str, int, bool]:
    check_parameters("filesystem", parameters, {"rootdirectory", "maxthreads", "directwrites"})
    root = parameters.get("rootdirectory", DEFAULT_ROOT_DIRECTORY)
    if not isinstance(root, str) or not root:
        raise ValueError(
            f"storage driver 'filesystem': rootdirectory must be a non-empty string, not {root!r}"
        )
    threads = parameters.get("maxthreads", DEFAULT_MAX_THREADS)
    # Environment overrides arrive as strings.
    if isinstance(threads, str) and threads.strip().isdigit():
        threads = int(threads)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(
            f"storage driver 'filesystem': maxthreads must be a positive integer, not {threads!r}"
        )
    direct = parameters.get("directwrites", True)
    if isinstance(direct, str) and direct.strip().lower() in ("true", "false"):
        direct = direct.strip().lower() == "true"
    if not isinstance(direct, bool):
        raise ValueError(
            f"storage driver 'filesystem': directwrites must be true or false, not {direct!r}"
        )
    return root, threads, direct


_FACTORIES: dict[str, DriverFactory] = {
    "azure": _azure,
    "filesystem": _filesystem,
    "gcs": _gcs,
    "inmemory": _inmemory,
    "s3": _s3,
    "swift": _swift,
}
_CHECKS: dict[str, ParameterCheck] = {
    "azure": _azure_parameters,
    "filesystem": _filesystem_parameters,
    "gcs": _gcs_parameters,
    "inmemory": lambda parameters: check_parameters("inmemory", parameters, set()),
    "s3": _s3_parameters,
    "swift": _swift_parameters,
}


def validate_storage(storage: StorageConfig) -> None:
    """ConfigError (one line) for what :func:`create_driver` would refuse, without building
    the driver."""
    check = _CHECKS.get(storage.driver)
    if check is None:
        known = ", ".join(sorted(_CHECKS))
        raise ConfigError(f"storage.{storage.driver}: unknown storage driver (known: {known})")
    try:
        check(storage.parameters)
        check_middleware(storage.driver, storage.middleware)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def create_driver(storage: StorageConfig) -> StorageDriver:
    """The driver ``storage`` names, ready to use; ValueError for an unknown driver or parameter."""
    factory = _FACTORIES.get(storage.driver)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"unknown storage driver {storage.driver!r} (known: {known})")
    return CheckedDriver(apply_middleware(factory(storage.parameters), storage.middleware))
