"""Which repositories mirror which upstream, and under what name there.

A repository whose name starts with a mirror's prefix mirrors the rest of its name upstream
(``dockerhub/library/alpine`` is ``library/alpine`` on Docker Hub); with Distribution's
``proxy`` configured, every other name mirrors itself on its upstream. A client that names the
upstream's host in ``ns`` (``GET /v2/library/alpine/manifests/3?ns=docker.io``, as containerd
sends it to a mirror) asks for the mirror's local name. Nothing here ever takes a host from a
request: ``ns`` only chooses among the configured mirrors, and an unknown one chooses none.
"""

from __future__ import annotations

from dataclasses import dataclass

from wharf.config.mirrors import MirrorConfig
from wharf.errors import RegistryError
from wharf.reference import RepositoryName
from wharf.registry.proxy.upstream import Upstream

__all__ = ["Mirror", "Mirrors", "Route"]


@dataclass(frozen=True, slots=True)
class Mirror:
    config: MirrorConfig
    upstream: Upstream


@dataclass(frozen=True, slots=True)
class Route:
    """A mirrored repository: its mirror, and its name upstream."""

    mirror: Mirror
    upstream_name: RepositoryName


class Mirrors:
    def __init__(self, configs: tuple[MirrorConfig, ...]) -> None:
        self.mirrors = tuple(Mirror(config, Upstream(config)) for config in configs)
        self._by_host = {host: m for m in self.mirrors for host in m.config.hosts}
        self._prefixed = [m for m in self.mirrors if m.config.prefix]
        self._everything = next((m for m in self.mirrors if not m.config.prefix), None)

    def route(self, name: RepositoryName) -> Route | None:
        """The mirror ``name`` belongs to; None for an ordinary repository."""
        text = name.value
        for mirror in self._prefixed:
            prefix = mirror.config.prefix
            if text.startswith(prefix + "/"):
                try:
                    return Route(mirror, RepositoryName(text[len(prefix) + 1 :]))
                except RegistryError:
                    return None
            if text == prefix:
                return None  # the namespace itself holds no repository upstream
        if self._everything is not None:
            return Route(self._everything, name)
        return None

    def local_name(self, name: str, ns: str | None) -> str:
        """The name a request for ``name`` on upstream host ``ns`` is served under."""
        if not ns:
            return name
        mirror = self._by_host.get(ns.strip().lower())
        if mirror is None or not mirror.config.prefix:
            return name
        return f"{mirror.config.prefix}/{name}"

    async def aclose(self) -> None:
        for mirror in self.mirrors:
            await mirror.upstream.aclose()
