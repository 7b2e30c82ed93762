"""The registry: the shared blob store, and each repository's services over it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Token
from wharf.config.mirrors import MirrorConfig
from wharf.config.validation import ValidationConfig
from wharf.errors import RegistryError
from wharf.reference import RepositoryName
from wharf.registry.blobs import BlobStore, RepositoryBlobs
from wharf.registry.catalog import CATALOG_KEY, REMOVALS_KEY, Catalog
from wharf.registry.manifests import Manifests
from wharf.registry.proxy.expiry import Expiry
from wharf.registry.proxy.routes import Mirrors
from wharf.registry.proxy.services import ProxyState
from wharf.registry.proxy.services import decorate as decorate_mirror
from wharf.registry.referrers import Referrers
from wharf.registry.tags import LOOKUP_CONCURRENCY, Tags
from wharf.registry.uploads import Uploads
from wharf.storage.driver import StorageDriver

__all__ = ["Registry", "Repository"]

log = logging.getLogger("wharf.catalog")

#: Repository names each process remembers having written to.
_KNOWN_REPOSITORIES = 100_000


class Repository:
    def __init__(self, registry: Registry, name: RepositoryName) -> None:
        self.registry = registry
        self.name = name
        driver, cache = registry.driver, registry.cache
        # Each service announces its own writes: no caller can forget to.
        self.blobs = RepositoryBlobs(registry.blobs, name, self.changed, self.created)
        self.tags = Tags(driver, name, cache, self.changed, registry.tag_lookup_concurrency)
        self.referrers = Referrers(driver, name)
        self.manifests = Manifests(
            driver,
            registry.blobs,
            self.blobs,
            self.tags,
            self.referrers,
            cache,
            self.changed,
            registry.validation,
            self.created,
        )
        self.uploads = Uploads(
            driver, self.blobs, registry.blobs, registry.hash_executor, registry.cache
        )

    async def created(self) -> None:
        """Awaited before a layer or revision link is written: the catalog index lists the
        repository from then on (checked once per process until a repository is removed)."""
        registry = self.registry
        name = self.name.value
        token = registry.cache.generations.token(REMOVALS_KEY)
        if registry.indexed_repositories.get(name) == token:
            return
        try:
            await registry.catalog.index.note(name)
        except Exception as error:  # a push does not fail for the catalog: a reconcile adds it
            log.warning("cannot add %s to the catalog index: %s", name, error)
            return
        if len(registry.indexed_repositories) >= _KNOWN_REPOSITORIES:
            registry.indexed_repositories.clear()
        registry.indexed_repositories[name] = token

    def changed(self) -> None:
        """Called by the services after every durable write to this repository: every worker
        of every instance drops what it cached of it."""
        name = self.name.value
        registry = self.registry
        registry.cache.generations.changed(name)
        if name in registry.known_repositories:
            return
        if not registry.catalog.lists(name):
            registry.cache.generations.changed(CATALOG_KEY)
        if len(registry.known_repositories) >= _KNOWN_REPOSITORIES:
            registry.known_repositories.clear()  # forgetting costs at most a catalog walk
        registry.known_repositories.add(name)


class Registry:
    def __init__(
        self,
        driver: StorageDriver,
        cache: RegistryCache,
        hash_executor: Executor,
        mirrors: tuple[MirrorConfig, ...] = (),
        tag_lookup_concurrency: int = 0,
        validation: ValidationConfig | None = None,
    ) -> None:
        self.driver = driver
        #: Which references of a push must already be in its repository.
        self.validation = validation or ValidationConfig()
        #: ``storage.tag.concurrencylimit``; 0: wharf's default.
        self.tag_lookup_concurrency = tag_lookup_concurrency or LOOKUP_CONCURRENCY
        self.cache = cache
        self.hash_executor = hash_executor
        self.blobs = BlobStore(driver)
        self.catalog = Catalog(driver, cache)
        #: The pull-through cache's upstreams (None: no repository mirrors one).
        self.mirrors = Mirrors(mirrors) if mirrors else None
        self.proxy = ProxyState(Expiry(driver, self._ttl)) if mirrors else None
        #: Repositories this process has written to, so the catalog's token changes only
        #: when a repository may be new (the cached catalog answers for the others).
        self.known_repositories: set[str] = set()
        #: Repositories this process saw in the catalog index, with the change token of
        #: removals then.
        self.indexed_repositories: dict[str, Token] = {}
        self._noting: set[asyncio.Task[None]] = set()
        #: Decorators applied to each repository's services (notifications), in order.
        self.middleware: list[Callable[[Repository], None]] = []

    def served(self, name: RepositoryName) -> None:
        """A request found content in ``name``, which another writer of the storage may have
        made: the catalog index is told in the background, once per process (until a
        removal), so that a repository Distribution pushed is listed once wharf served it."""
        token = self.cache.generations.token(REMOVALS_KEY)
        if self.indexed_repositories.get(name.value) == token:
            return
        if len(self.indexed_repositories) >= _KNOWN_REPOSITORIES:
            self.indexed_repositories.clear()
        self.indexed_repositories[name.value] = token
        task = asyncio.ensure_future(self._note(name.value))
        self._noting.add(task)
        task.add_done_callback(self._noting.discard)

    async def _note(self, name: str) -> None:
        try:
            await self.catalog.index.note(name)
        except Exception as error:  # the next reconcile adds it
            self.indexed_repositories.pop(name, None)
            log.warning("cannot add %s to the catalog index: %s", name, error)

    def repository(self, name: RepositoryName) -> Repository:
        repository = Repository(self, name)
        if self.mirrors is not None and self.proxy is not None:
            route = self.mirrors.route(name)
            if route is not None:
                decorate_mirror(repository, route, self.proxy)
        for decorate in self.middleware:
            decorate(repository)
        return repository

    def mirrored(self, name: str) -> bool:
        """Whether ``name`` mirrors an upstream: its answers are not to be kept apart from
        its services, which check tags upstream and record pulls for expiry."""
        if self.mirrors is None:
            return False
        try:
            return self.mirrors.route(RepositoryName(name)) is not None
        except RegistryError:
            return False

    def local_repository(self, name: RepositoryName) -> Repository:
        """The repository as storage holds it, even where it mirrors an upstream: what
        maintenance (expiry) works on."""
        return Repository(self, name)

    def mirror_ttl(self, name: RepositoryName) -> timedelta | None:
        """How long ``name`` keeps what it fetched unpulled; None: for ever, or no mirror."""
        return self._ttl(name)

    def _ttl(self, name: RepositoryName) -> timedelta | None:
        route = self.mirrors.route(name) if self.mirrors is not None else None
        return route.mirror.config.ttl if route is not None else None

    async def aclose(self) -> None:
        if self._noting:
            await asyncio.gather(*list(self._noting), return_exceptions=True)
        if self.proxy is not None:
            await self.proxy.aclose()
            await self.proxy.expiry.settle()
        if self.mirrors is not None:
            await self.mirrors.aclose()
