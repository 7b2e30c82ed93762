"""Scopes as the Docker token specification writes them: ``repository:<name>:pull,push``.

One scope names a resource and a list of actions; a request may carry several scopes
(repeated ``scope`` parameters, or separated by spaces in OAuth2 and in challenges).
"""

from __future__ import annotations

from collections.abc import Iterable

from wharf.auth.base import Access

__all__ = ["MAX_SCOPES", "format_scopes", "parse_scopes"]

#: Most accesses one request may ask for; a push of one image asks for two or three.
MAX_SCOPES = 64
_MAX_SCOPE_LENGTH = 512


def parse_scopes(texts: Iterable[str]) -> list[Access]:
    """The accesses named by ``texts``; raises ValueError on a malformed scope.

    The resource name may itself contain colons (``repository:host:5000/a:pull``), so the
    type ends at the first colon and the actions start after the last one, as Docker's
    parser does. A resource class (``repository(plugin)``) is dropped: wharf has none.
    """
    accesses: list[Access] = []
    for text in texts:
        for scope in text.split():
            if len(scope) > _MAX_SCOPE_LENGTH:
                raise ValueError("scope too long")
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            kind = kind.split("(", 1)[0]
            if not kind or not name or not actions:
                raise ValueError(f"malformed scope {scope[:100]!r}")
            for action in actions.split(","):
                if action:
                    accesses.append(Access(kind, name, action))
                if len(accesses) > MAX_SCOPES:
                    raise ValueError(f"more than {MAX_SCOPES} accesses requested")
    return accesses


def format_scopes(accesses: Iterable[Access]) -> str:
    """Scopes for a challenge or a token response: one per resource, in first-seen order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for access in accesses:
        actions = grouped.setdefault((access.type, access.name), [])
        if access.action not in actions:
            actions.append(access.action)
    return " ".join(f"{kind}:{name}:{','.join(acts)}" for (kind, name), acts in grouped.items())
