"""Open a registry over configured storage: the namespace of its repositories."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import UncachedGenerations
from wharf.coherence.shared import open_generations
from wharf.config import Config
from wharf.config.load import load_config
from wharf.errors import Unsupported
from wharf.library._blobs import Blobs
from wharf.library._content import Manifests, Tags
from wharf.library._values import as_digest, as_name
from wharf.reference import Digest, RepositoryName
from wharf.registry import remover
from wharf.registry.blobs import BlobInfo
from wharf.registry.gc.guard import WriteGuard, create_coordination
from wharf.registry.gc.inventory import walk_blobs
from wharf.registry.namespace import Registry
from wharf.registry.namespace import Repository as RepositoryServices
from wharf.storage.driver import StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver

__all__ = ["Namespace", "Repository", "RepositoryRemover", "open_registry"]

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | StorageDriver


class Repository:
    """One repository: its blobs, manifests, tags and referrers."""

    def __init__(self, services: RepositoryServices, guard: WriteGuard | None, readonly: bool):
        self._services = services
        self.name: str = services.name.value
        self.blobs = Blobs(services.blobs, services.uploads, self._writable)
        self.manifests = Manifests(services.manifests, guard, self._writable)
        self.tags = Tags(services.tags, self._writable)
        self._readonly = readonly

    def _writable(self) -> None:
        if self._readonly:
            raise Unsupported(message="registry is in read-only mode")

    async def referrers(
        self, digest: str | Digest, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The descriptors of the manifests whose subject is ``digest`` (the referrers API's
        answer), of ``artifact_type`` when given."""
        return await self._services.referrers.find(as_digest(digest), artifact_type)


class Namespace:
    """A registry's repositories over one storage (Distribution's ``Namespace``). Use it with
    ``async with``, or call :meth:`aclose`."""

    def __init__(
        self,
        driver: StorageDriver,
        *,
        config: Config | None = None,
        guard: WriteGuard | None = None,
    ) -> None:
        self.config = config
        self._readonly = config is not None and config.storage.readonly
        self._guard = guard
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="wharf-library")
        # With a configuration, the change tokens every process serving or collecting that
        # storage shares (on this machine, or through Redis): what this process writes is
        # announced to them, and what they write to it. A bare driver has nobody to share
        # with: nothing is cached then, since another process may write to the same storage.
        self._generations = (
            open_generations(config) if config is not None else UncachedGenerations()
        )
        self._registry = Registry(
            driver,
            RegistryCache(self._generations),
            self._executor,
            config.mirrors if config is not None else (),
        )

    @property
    def driver(self) -> StorageDriver:
        return self._registry.driver

    def repository(self, name: str | RepositoryName) -> Repository:
        """The repository ``name`` (NameInvalid for a bad name); it exists once written to."""
        return Repository(self._registry.repository(as_name(name)), self._guard, self._readonly)

    async def repositories(self) -> list[str]:
        """Every repository's name, sorted (Distribution's ``Repositories``)."""
        return await self._registry.catalog.walk()

    async def blobs(self) -> AsyncIterator[BlobInfo]:
        """Every blob in the registry's store, linked by any repository or none."""
        async for entry in walk_blobs(self._registry.driver):
            yield BlobInfo(entry.digest, entry.size)

    async def remove(self, name: str | RepositoryName) -> None:
        """Remove a repository (:class:`RepositoryRemover`)."""
        if self._readonly:
            raise Unsupported(message="registry is in read-only mode")
        await remover.RepositoryRemover(self._registry).remove(as_name(name))

    async def aclose(self) -> None:
        try:
            await self._registry.aclose()
            if self._guard is not None:
                await self._guard.aclose()
            await self._registry.driver.close()
            await self._generations.aclose()
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Namespace:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RepositoryRemover:
    """Distribution's ``RepositoryRemover``: removes a repository's manifests, tags, links,
    referrers index and upload sessions; the blobs stay for garbage collection. A repository
    nested below it is left alone."""

    def __init__(self, namespace: Namespace) -> None:
        self._namespace = namespace

    async def remove(self, name: str | RepositoryName) -> None:
        """NameUnknown when there is no such repository."""
        await self._namespace.remove(name)


def _load(source: Mapping[str, Any] | str | os.PathLike[str]) -> Config:
    if not isinstance(source, Mapping):
        return load_config(os.fspath(source), {})
    tree = dict(source)
    if "storage" not in tree:
        raise ValueError("a configuration mapping needs a storage section")
    tree.setdefault("version", "0.1")
    # Through the loader that reads config.yml, so that a mapping is checked as a file is.
    with tempfile.TemporaryDirectory(prefix="wharf-config-") as directory:
        path = Path(directory) / "config.yml"
        path.write_text(yaml.safe_dump(tree))
        return load_config(str(path), {})


def open_registry(source: ConfigSource) -> Namespace:
    """A registry over the storage ``source`` configures: a configuration (a :class:`Config`,
    a mapping in ``config.yml``'s form such as ``{"storage": {"inmemory": {}}}``, or the path
    of a ``config.yml``; ``REGISTRY_*`` variables are not read), or a storage driver.

    Opened from a configuration, it shares the change tokens of the registries serving the
    same storage (on this machine, or through ``redis``), so that they never serve from
    their caches what it changed; opened on a bare driver it announces nothing, and a
    server sharing that storage may serve stale tags or catalog pages until restarted.

    Only the storage and what acts on it (``storage.maintenance.readonly``, ``mirrors``,
    ``redis`` for the coordination with garbage collection) matter here; the ``http`` and
    ``auth`` sections are the server's. ValueError (``ConfigError``) for a bad configuration.
    """
    if isinstance(source, StorageDriver):
        driver = source if isinstance(source, CheckedDriver) else CheckedDriver(source)
        return Namespace(driver)
    config = source if isinstance(source, Config) else _load(source)
    guard = None
    if not config.storage.readonly and config.storage.driver != "inmemory":
        guard = WriteGuard(create_coordination(config))
    return Namespace(create_driver(config.storage), config=config, guard=guard)
