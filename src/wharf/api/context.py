"""What every handler needs: the registry services and the settings that shape responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wharf.api.http import Request
from wharf.api.response_cache import ResponseCaches
from wharf.api.upload_state import UploadStateSigner
from wharf.auth import Access, AccessController
from wharf.config import Config
from wharf.errors import Denied, Unauthorized, Unsupported
from wharf.reference import RepositoryName
from wharf.registry.gc.guard import WriteGuard
from wharf.registry.namespace import Registry, Repository

__all__ = ["AppContext"]

#: Largest manifest accepted, as Distribution's default.
MANIFEST_MAX_BYTES = 4 << 20


@dataclass
class AppContext:
    config: Config
    registry: Registry
    #: The key signing upload URLs, read once when first needed (it may be in storage).
    upload_key: Callable[[], Awaitable[bytes]]
    prefix: str = ""
    access: AccessController | None = None
    responses: ResponseCaches = field(default_factory=ResponseCaches)
    #: Pins what a manifest PUT depends on for a running garbage collection.
    write_guard: WriteGuard | None = None
    _signer: UploadStateSigner | None = None

    async def upload_signer(self) -> UploadStateSigner:
        if self._signer is None:
            self._signer = UploadStateSigner(await self.upload_key())
        return self._signer

    def repository(self, name: str) -> Repository:
        return self.registry.repository(RepositoryName(name))

    def url(self, path: str) -> str:
        """A Location for ``path`` (which starts with /v2/), under the configured prefix."""
        host = self.config.http.host.rstrip("/")
        return f"{host}{self.prefix}{path}"

    async def may(self, request: Request, *accesses: Access) -> bool:
        """Whether the caller of ``request`` holds ``accesses`` (always, without auth)."""
        if self.access is None:
            return True
        try:
            await self.access.authorize(request.headers, accesses)
        except (Unauthorized, Denied):
            return False
        return True

    def require_writable(self) -> None:
        if self.config.storage.readonly:
            raise Unsupported(message="registry is in read-only mode")

    def require_delete(self) -> None:
        self.require_writable()
        if not self.config.storage.delete_enabled:
            raise Unsupported(message="deletes are disabled on this registry")
