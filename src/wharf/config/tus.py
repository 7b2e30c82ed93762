"""``tus``, wharf's own section: a tus 1.0 resumable-upload endpoint whose finished uploads
become blobs (and, when tagged, artifacts) of a repository::

    tus:
      enabled: true
      path: /tus/                  # where the endpoint answers (under http.prefix)
      maxsize: 10737418240         # Tus-Max-Size, bytes of one upload
      maxmetadatasize: 4096        # bytes of one Upload-Metadata header
      maxuploadsperclient: 64      # unfinished uploads one client (user, or address) may hold
      expiration: 24h              # an upload untouched this long expires and is purged
      purgeinterval: 1h            # how often expired uploads are looked for
      cors:
        alloworigins: ["https://app.example.com"]   # or ["*"]; empty: no CORS headers
        allowcredentials: false
        maxage: 24h                # how long a browser may keep a preflight's answer
        allowheaders: []           # request headers allowed beyond tus's own
        exposeheaders: []          # response headers exposed beyond tus's own

Every key is checked at start; an unknown one is refused as elsewhere in the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from wharf.config.operations import SectionReader

__all__ = ["TusConfig", "TusCors", "parse_tus"]

_DEFAULT_MAX_SIZE = 10 << 30
_HEADER_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class TusCors:
    #: Origins a browser may upload from; ``*`` allows any. Empty: no CORS headers at all.
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: timedelta = timedelta(hours=24)
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TusConfig:
    enabled: bool = False
    #: Starts and ends with ``/``.
    path: str = "/tus/"
    max_size: int = _DEFAULT_MAX_SIZE
    max_metadata_size: int = 4096
    max_uploads_per_client: int = 64
    expiration: timedelta = timedelta(hours=24)
    purge_interval: timedelta = timedelta(hours=1)
    cors: TusCors = field(default_factory=TusCors)


def _strings(section: SectionReader, name: str, *, header: bool = False) -> tuple[str, ...]:
    value = section.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise section.error(name, "expected a list of strings")
    items = tuple(item.strip() for item in value if item.strip())
    if header:
        for item in items:
            if not set(item.lower()) <= _HEADER_NAME_CHARS:
                raise section.error(name, f"not a header name: {item[:60]!r}")
    return items


def _cors(section: SectionReader) -> TusCors:
    origins = _strings(section, "alloworigins")
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise section.error("alloworigins", f"not an origin (scheme://host): {origin[:60]!r}")
    cors = TusCors(
        allow_origins=origins,
        allow_credentials=section.boolean("allowcredentials", False),
        max_age=section.duration("maxage", timedelta(hours=24)),
        allow_headers=_strings(section, "allowheaders", header=True),
        expose_headers=_strings(section, "exposeheaders", header=True),
    )
    if cors.allow_credentials and "*" in origins:
        raise section.error(
            "allowcredentials", "browsers refuse credentials with alloworigins '*': name origins"
        )
    section.finish()
    return cors


def parse_tus(section: SectionReader) -> TusConfig:
    """The ``tus`` section; ValueError (the loader's ConfigError) for a bad or unknown key."""
    path = section.string("path", "/tus/").strip()
    if not path.startswith("/"):
        raise section.error("path", f"must start with /, got {path[:60]!r}")
    path = path.rstrip("/") + "/"
    if (
        path == "/"
        or path.startswith("/v2/")
        or any(part in (".", "..") for part in path.split("/"))
    ):
        raise section.error("path", f"must be a path of its own outside /v2/, got {path[:60]!r}")
    config = TusConfig(
        enabled=section.boolean("enabled", False),
        path=path,
        max_size=section.integer("maxsize", _DEFAULT_MAX_SIZE, minimum=1),
        max_metadata_size=section.integer("maxmetadatasize", 4096, minimum=64),
        max_uploads_per_client=section.integer("maxuploadsperclient", 64, minimum=1),
        expiration=section.duration("expiration", timedelta(hours=24), positive=True),
        purge_interval=section.duration("purgeinterval", timedelta(hours=1), positive=True),
        cors=_cors(section.section("cors")),
    )
    section.finish()
    return config
