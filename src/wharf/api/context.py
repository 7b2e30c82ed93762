"""What every handler needs: the registry services and the settings that shape responses."""

from __future__ import annotations

from dataclasses import dataclass

from wharf.api.upload_state import UploadStateSigner
from wharf.config import Config
from wharf.errors import Unsupported
from wharf.reference import RepositoryName
from wharf.registry.namespace import Registry, Repository

__all__ = ["AppContext"]

#: Largest manifest accepted, as Distribution's default.
MANIFEST_MAX_BYTES = 4 << 20


@dataclass
class AppContext:
    config: Config
    registry: Registry
    signer: UploadStateSigner
    prefix: str = ""

    def repository(self, name: str) -> Repository:
        return self.registry.repository(RepositoryName(name))

    def url(self, path: str) -> str:
        """A Location for ``path`` (which starts with /v2/), under the configured prefix."""
        host = self.config.http.host.rstrip("/")
        return f"{host}{self.prefix}{path}"

    def require_writable(self) -> None:
        if self.config.storage.readonly:
            raise Unsupported(message="registry is in read-only mode")

    def require_delete(self) -> None:
        self.require_writable()
        if not self.config.storage.delete_enabled:
            raise Unsupported(message="deletes are disabled on this registry")
