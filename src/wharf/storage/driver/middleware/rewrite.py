"""``rewrite`` (Distribution 3): the URL the driver below redirects to, with its scheme, host
or leading path changed, for a proxy or CDN in front of the storage service::

    scheme: https                 # replaces the URL's scheme
    host: cdn.example.com:8443    # replaces its host (and port)
    trimpathprefix: /bucket       # removed from the start of its path

Every option is optional; the query (an S3 presigned URL's signature) is kept as it is.
Where the driver below serves blobs itself (no redirect URL), so does the registry.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from wharf.storage.driver.base import StorageDriver
from wharf.storage.driver.middleware.base import Middleware
from wharf.storage.driver.middleware.options import Options

__all__ = ["RewriteMiddleware", "RewriteOptions", "parse_rewrite"]


class RewriteOptions:
    __slots__ = ("host", "scheme", "trim_path_prefix")

    def __init__(self, scheme: str, host: str, trim_path_prefix: str) -> None:
        self.scheme = scheme
        self.host = host
        self.trim_path_prefix = trim_path_prefix


def parse_rewrite(options: Options) -> RewriteOptions:
    scheme = options.string("scheme").strip()
    host = options.string("host").strip()
    trim = options.string("trimpathprefix")
    options.finish()
    if scheme and not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise options.error("scheme", f"not a URL scheme: {scheme!r}")
    if host and any(c in host for c in "/?#@ "):
        raise options.error("host", f"a host name and optional port, not {host!r}")
    return RewriteOptions(scheme, host, trim)


class RewriteMiddleware(Middleware):
    def __init__(self, inner: StorageDriver, options: RewriteOptions) -> None:
        super().__init__(inner)
        self.options = options

    @classmethod
    def from_options(
        cls, inner: StorageDriver, options: Mapping[str, Any], where: str = ""
    ) -> RewriteMiddleware:
        return cls(inner, parse_rewrite(Options("rewrite", where, options)))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        url = await self.inner.redirect_url(path, method)
        if url is None:
            return None
        return rewrite_url(url, self.options)


def rewrite_url(url: str, options: RewriteOptions) -> str:
    parts = urllib.parse.urlsplit(url)
    scheme = options.scheme or parts.scheme
    netloc = options.host or parts.netloc
    path = parts.path
    if options.trim_path_prefix and path.startswith(options.trim_path_prefix):
        path = path[len(options.trim_path_prefix) :]
    return urllib.parse.urlunsplit((scheme, netloc, path, parts.query, parts.fragment))
