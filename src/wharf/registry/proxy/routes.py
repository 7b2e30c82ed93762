"""Which repositories mirror which upstream, and under what name there.

A repository whose name starts with a mirror's prefix mirrors the rest of its name upstream
(``dockerhub/library/alpine`` is ``library/alpine`` on Docker Hub); with Distribution's
``proxy`` configured, every other name mirrors itself on its upstream. A client that names the
upstream's host in ``ns`` (``GET /v2/library/alpine/manifests/3?ns=docker.io``, as containerd
sends it to a mirror) asks for the mirror's local name. Nothing here ever takes a host from a
request: ``ns`` only chooses among the configured mirrors, and an unknown one chooses none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wharf.config.mirrors import MirrorConfig
from wharf.errors import RegistryError
from wharf.reference import RepositoryName
from wharf.registry.proxy.upstream import Upstream

__all__ = ["Mirror", "Mirrors", "Route", "match"]


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

    def route(self, name: RepositoryName) -> Route | None:
        """The mirror ``name`` belongs to; None for an ordinary repository."""
        found = match(tuple(m.config for m in self.mirrors), name)
        return None if found is None else Route(self.mirrors[found[0]], found[1])

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


def match(
    configs: Sequence[MirrorConfig], name: RepositoryName
) -> tuple[int, RepositoryName] | None:
    """Which of ``configs`` mirrors ``name`` (its position), and the name upstream; None for
    an ordinary repository. The first prefix that matches wins, then a mirror of everything."""
    text = name.value
    for position, config in enumerate(configs):
        prefix = config.prefix
        if not prefix:
            continue
        if text.startswith(prefix + "/"):
            try:
                return position, RepositoryName(text[len(prefix) + 1 :])
            except RegistryError:
                return None
        if text == prefix:
            return None  # the namespace itself holds no repository upstream
    everything = next((i for i, config in enumerate(configs) if not config.prefix), None)
    return None if everything is None else (everything, name)
