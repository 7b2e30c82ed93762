"""``redirect``: blobs are fetched from another server that holds the storage's files.

As Distribution's ``redirect`` middleware: the URL of a file is the ``baseurl``'s scheme and
host, and its path joined with the file's storage path, whatever driver is below::

    baseurl: https://blobs.example.com/registry
    /docker/registry/v2/blobs/sha256/ab/ab12.../data
      -> https://blobs.example.com/registry/docker/registry/v2/blobs/sha256/ab/ab12.../data

The server there must serve the files of the storage (a web server over the filesystem's
root directory, a bucket's website endpoint) and answer for their authorization itself:
the URL is not signed.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import Mapping
from typing import Any

from wharf.storage.driver.base import StorageDriver
from wharf.storage.driver.middleware.base import Middleware
from wharf.storage.driver.middleware.options import Options

__all__ = ["RedirectMiddleware", "RedirectOptions", "parse_redirect"]


class RedirectOptions:
    __slots__ = ("base_path", "host", "scheme")

    def __init__(self, scheme: str, host: str, base_path: str) -> None:
        self.scheme = scheme
        self.host = host
        self.base_path = base_path


def parse_redirect(options: Options) -> RedirectOptions:
    base = options.string("baseurl", required="the URL the storage's files are served under")
    options.finish()
    parsed = urllib.parse.urlsplit(base)
    if not parsed.scheme:
        raise options.error("baseurl", f"no scheme in {base!r} (such as https://)")
    if not parsed.netloc:
        raise options.error("baseurl", f"no host in {base!r}")
    return RedirectOptions(parsed.scheme, parsed.netloc, urllib.parse.unquote(parsed.path))


class RedirectMiddleware(Middleware):
    def __init__(self, inner: StorageDriver, options: RedirectOptions) -> None:
        super().__init__(inner)
        self.options = options

    @classmethod
    def from_options(
        cls, inner: StorageDriver, options: Mapping[str, Any], where: str = ""
    ) -> RedirectMiddleware:
        return cls(inner, parse_redirect(Options("redirect", where, options)))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if method not in ("GET", "HEAD"):
            return None
        o = self.options
        # Go's path.Join: one slash between the parts, none doubled.
        full = posixpath.normpath("/" + posixpath.join(o.base_path.strip("/"), path.lstrip("/")))
        return f"{o.scheme}://{o.host}{urllib.parse.quote(full)}"
