"""The route table: every endpoint of the API in one place.

Repository names may contain slashes, so each pattern takes the name greedily and anchors on
the endpoint's suffix; the greedy match makes ``a/manifests/b/manifests/latest`` the name
``a/manifests/b``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wharf.api import blobs, listings, manifests, uploads
from wharf.api.context import AppContext
from wharf.api.http import Request, Response
from wharf.auth import Access

__all__ = ["ROUTES", "Handler", "Route", "match_route"]

Handler = Callable[[AppContext, Request, str, str], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: dict[str, Handler]

    def accesses(self, method: str, name: str) -> tuple[Access, ...]:
        """What a request needs, by Distribution's rule: reads pull, writes pull and push,
        deletes delete; the catalog needs ``registry:catalog:*``."""
        if self.name == "catalog":
            return (Access("registry", "catalog", "*"),)
        if method in ("GET", "HEAD"):
            return (Access("repository", name, "pull"),)
        if method == "DELETE":
            return (Access("repository", name, "delete"),)
        return (Access("repository", name, "pull"), Access("repository", name, "push"))


def _route(name: str, pattern: str, methods: dict[str, Handler]) -> Route:
    if "GET" in methods:
        methods.setdefault("HEAD", methods["GET"])
    # DOTALL: a name holding a line break (``%0a`` in the URL) reaches its handler and is
    # refused as the invalid name it is, like any other, instead of matching no route.
    return Route(name, re.compile(pattern, re.DOTALL), methods)


ROUTES: tuple[Route, ...] = (
    _route(
        "manifest",
        r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)",
        {
            "GET": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    _route(
        "blob",
        r"/v2/(?P<name>.+)/blobs/(?P<ref>(?!uploads$)[^/]+)",
        {"GET": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    _route(
        "upload_start", r"/v2/(?P<name>.+)/blobs/uploads/?(?P<ref>)", {"POST": uploads.start_upload}
    ),
    _route(
        "upload",
        r"/v2/(?P<name>.+)/blobs/uploads/(?P<ref>[^/]+)",
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.complete_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    _route("tags", r"/v2/(?P<name>.+)/tags/list(?P<ref>)", {"GET": listings.list_tags}),
    _route(
        "referrers",
        r"/v2/(?P<name>.+)/referrers/(?P<ref>[^/]+)",
        {"GET": listings.get_referrers},
    ),
    _route("catalog", r"/v2/_catalog(?P<name>)(?P<ref>)", {"GET": listings.get_catalog}),
)


def match_route(path: str) -> tuple[Route, str, str] | None:
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match is not None:
            return route, match.group("name"), match.group("ref")
    return None
