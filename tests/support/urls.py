"""Adding query parameters to a Location, as registry clients do.

httpx replaces a URL's query with ``params``; a session Location carries its ``_state`` in its
query, which must stay."""

from __future__ import annotations

from urllib.parse import urlencode

__all__ = ["with_query"]


def with_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)
