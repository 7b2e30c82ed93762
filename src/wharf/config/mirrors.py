"""The pull-through cache's settings: Distribution's ``proxy`` section, and wharf's own
``mirrors`` list for several upstreams beside local repositories.

Distribution's ``proxy`` mirrors one upstream with the whole registry: every repository is a
mirror of the same name upstream, and nothing can be pushed. Each entry of ``mirrors`` mirrors
one upstream under a local namespace (``prefix``, stripped before asking the upstream), and is
also chosen by the upstream's host name as a client sends it in the ``ns`` query parameter
(the distribution-spec's "Registry Proxying"; containerd sends it). Names outside every prefix
are ordinary repositories, or, with ``proxy`` also configured, mirrors of its upstream::

    proxy:                              # Distribution's
      remoteurl: https://registry-1.docker.io
      username: someone                 # or exec: {command: docker-credential-x, lifetime: 1h}
      password: secret
      ttl: 168h                         # 0: cached content never expires
    mirrors:                            # wharf's own
      - prefix: dockerhub               # dockerhub/library/alpine is library/alpine upstream
        url: https://registry-1.docker.io
        hosts: [docker.io]              # ?ns=docker.io selects it too
        username: someone
        password: secret
        tls: {ca: /etc/ssl/upstream.pem, insecureskipverify: false}
        tagcheck: 1m                    # a tag is checked upstream at most this often
        ttl: 168h
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from wharf.config.operations import SectionReader

__all__ = [
    "DEFAULT_TTL",
    "CredentialHelper",
    "MirrorConfig",
    "UpstreamTLS",
    "parse_mirrors",
]

#: Distribution's default expiry of cached content.
DEFAULT_TTL = timedelta(hours=168)
#: How often a mirror of wharf's own section checks a tag upstream by default; Distribution's
#: ``proxy`` checks on every pull, and so does wharf for it.
_DEFAULT_TAG_CHECK = timedelta(minutes=1)
_DEFAULT_CACHE_WRITE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class CredentialHelper:
    """Distribution 3's ``exec``: a docker credential helper run with ``get``, the upstream's
    host on its standard input, its answer (``{"Username", "Secret"}``) used for ``lifetime``
    (None: for ever)."""

    command: str
    lifetime: timedelta | None = None


@dataclass(frozen=True, slots=True)
class UpstreamTLS:
    ca_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    #: Where the upstream registry answers (scheme, host and port; ``/v2/`` is below it).
    url: str
    #: The local namespace the mirror's repositories live in, without a trailing slash; ""
    #: for Distribution's ``proxy``, which mirrors every name not otherwise mirrored.
    prefix: str = ""
    #: Upstream host names a client may name in ``ns`` to choose this mirror.
    hosts: tuple[str, ...] = ()
    username: str = ""
    password: str = ""
    credential_helper: CredentialHelper | None = None
    tls: UpstreamTLS = UpstreamTLS()
    #: A tag pulled from the cache is checked upstream when its last check is older.
    tag_check: timedelta = timedelta(0)
    #: Cached content not pulled for this long expires (None: never).
    ttl: timedelta | None = DEFAULT_TTL
    #: How long a fetch goes on storing a blob once the client that asked for it has left.
    cache_write_timeout: timedelta = _DEFAULT_CACHE_WRITE

    @property
    def name(self) -> str:
        """What metrics and logs call it."""
        return self.prefix or "proxy"

    def __repr__(self) -> str:
        # Keep credentials out of logs and tracebacks.
        password = "***" if self.password else ""
        return f"MirrorConfig(url={self.url!r}, prefix={self.prefix!r}, password={password!r})"


def _url(section: SectionReader, name: str) -> str:
    text = section.string(name, "").strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise section.error(
            name, f"must be an http(s) URL such as https://registry.example.com, got {text!r}"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise section.error(name, "takes no query, fragment or credentials (use username/password)")
    return text.rstrip("/")


def _ttl(section: SectionReader) -> timedelta | None:
    ttl = section.duration("ttl", DEFAULT_TTL)
    return None if ttl == timedelta(0) else ttl


def _credentials(section: SectionReader) -> tuple[str, str, CredentialHelper | None]:
    username = section.string("username", "")
    password = section.string("password", "")
    helper = None
    if section.has("exec"):
        command = section.section("exec")
        program = command.string("command", "").strip()
        if not program:
            raise command.error("command", "names the credential helper to run")
        lifetime = command.duration("lifetime", None, positive=True)
        command.finish()
        helper = CredentialHelper(program, lifetime)
    if bool(username) != bool(password):
        raise section.error(
            "password" if username else "username", "username and password go together"
        )
    return username, password, helper


def _tls(section: SectionReader) -> UpstreamTLS:
    if not section.has("tls"):
        return UpstreamTLS()
    tls = section.section("tls")
    result = UpstreamTLS(
        ca_file=tls.string("ca", ""), insecure_skip_verify=tls.boolean("insecureskipverify", False)
    )
    tls.finish()
    return result


def _proxy(section: SectionReader) -> MirrorConfig:
    username, password, helper = _credentials(section)
    mirror = MirrorConfig(
        url=_url(section, "remoteurl"),
        username=username,
        password=password,
        credential_helper=helper,
        ttl=_ttl(section),
        cache_write_timeout=section.duration(
            "cachewritetimeout", _DEFAULT_CACHE_WRITE, positive=True
        ),
    )
    section.finish()
    return mirror


def _prefix(section: SectionReader) -> str:
    from wharf.errors import RegistryError
    from wharf.reference import RepositoryName

    prefix = section.string("prefix", "").strip().strip("/")
    if not prefix:
        raise section.error("prefix", "names the local namespace of the mirror, such as dockerhub")
    try:
        RepositoryName(prefix)
    except RegistryError:
        raise section.error(
            "prefix", f"must be a repository name such as dockerhub, got {prefix!r}"
        ) from None
    return prefix


def _mirror(section: SectionReader) -> MirrorConfig:
    username, password, helper = _credentials(section)
    hosts = section.get("hosts") or ()
    if isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, list | tuple) or not all(isinstance(h, str) and h for h in hosts):
        raise section.error("hosts", "expected a list of host names")
    mirror = MirrorConfig(
        url=_url(section, "url"),
        prefix=_prefix(section),
        hosts=tuple(host.strip().lower() for host in hosts),
        username=username,
        password=password,
        credential_helper=helper,
        tls=_tls(section),
        tag_check=section.duration("tagcheck", _DEFAULT_TAG_CHECK),
        ttl=_ttl(section),
        cache_write_timeout=section.duration(
            "cachewritetimeout", _DEFAULT_CACHE_WRITE, positive=True
        ),
    )
    section.finish()
    return mirror


def parse_mirrors(top: SectionReader) -> tuple[MirrorConfig, ...]:
    """The mirrors the top level's ``mirrors`` and ``proxy`` sections describe: each of
    ``mirrors`` in order, then ``proxy``'s (which takes every other name)."""
    mirrors: list[MirrorConfig] = []
    listed: Any = top.get("mirrors")
    if listed is not None:
        if not isinstance(listed, list):
            raise top.error("mirrors", "expected a list of mirrors")
        for index, entry in enumerate(listed):
            mirrors.append(_mirror(top.element("mirrors", index, entry)))
    if top.has("proxy"):
        proxy = top.section("proxy")
        if proxy.has("remoteurl"):
            mirrors.append(_proxy(proxy))
        else:
            proxy.finish()  # an empty section, as Distribution's sample configs carry
    prefixes: set[str] = set()
    hosts: set[str] = set()
    for index, mirror in enumerate(mirrors):
        if mirror.prefix and any(
            mirror.prefix == p
            or mirror.prefix.startswith(p + "/")
            or p.startswith(mirror.prefix + "/")
            for p in prefixes
        ):
            raise top.error(
                f"mirrors.{index}.prefix", f"{mirror.prefix!r} overlaps another mirror's prefix"
            )
        prefixes.add(mirror.prefix)
        for host in mirror.hosts:
            if host in hosts:
                raise top.error(f"mirrors.{index}.hosts", f"{host!r} is another mirror's host too")
            hosts.add(host)
    return tuple(mirrors)


def _overlap(one: str, other: str) -> bool:
    return one == other or one.startswith(other + "/") or other.startswith(one + "/")
