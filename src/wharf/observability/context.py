"""The request being served, as a context variable: its id and what the logs and events say.

``_http`` sets it for the duration of one request; every log line formatted meanwhile carries
the request id, and notification events take their ``request`` record from it. Tasks created
during a request inherit it (asyncio copies the context), threads do not.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "CURRENT",
    "RequestInfo",
    "accept_request_id",
    "current_request_id",
    "new_request_id",
    "note_actor",
    "note_route",
]

#: An incoming X-Request-Id is kept when it is this simple; otherwise wharf makes its own.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,63}")


class RequestInfo:
    """What is known about the request in flight. ``route``, ``repository`` and ``actor`` are
    filled in once routing and access control know them, the trace ids when the request is
    traced; the rest is read from the ASGI scope when asked."""

    __slots__ = (
        "actor",
        "announcements",
        "id",
        "method",
        "path",
        "repository",
        "route",
        "scope",
        "span_id",
        "trace_id",
    )

    def __init__(
        self, request_id: str, method: str, path: str, scope: Mapping[str, Any] | None = None
    ) -> None:
        self.id = request_id
        self.method = method
        self.path = path
        self.scope = scope or {}
        self.route = "unmatched"
        self.repository = ""
        self.actor = ""
        self.trace_id: str | None = None
        self.span_id: str | None = None
        #: Changes this request announced to other instances, awaited before it answers.
        self.announcements: list[Awaitable[None]] | None = None

    def header(self, name: bytes) -> str:
        for key, value in self.scope.get("headers", ()):
            if key == name:
                return str(value.decode("latin-1"))
        return ""

    @property
    def host(self) -> str:
        return self.header(b"host")

    @property
    def useragent(self) -> str:
        return self.header(b"user-agent")

    @property
    def scheme(self) -> str:
        return str(self.scope.get("scheme", "http"))

    @property
    def addr(self) -> str:
        """The client, as Distribution reports it: the first X-Forwarded-For hop or
        X-Real-Ip when a proxy sets them, else the peer address."""
        forwarded = self.header(b"x-forwarded-for").split(",")[0].strip()
        if forwarded:
            return forwarded
        real = self.header(b"x-real-ip").strip()
        if real:
            return real
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else ""

    def query(self, name: str) -> str | None:
        raw = self.scope.get("query_string", b"").decode("latin-1")
        values = parse_qs(raw, max_num_fields=64).get(name) if raw else None
        return values[-1] if values else None


CURRENT: ContextVar[RequestInfo | None] = ContextVar("wharf_request", default=None)


def note_route(route: str, repository: str = "") -> None:
    """Record which route serves the request, for which repository (metrics, traces)."""
    info = CURRENT.get()
    if info is not None:
        info.route = route
        info.repository = repository


def note_actor(name: str) -> None:
    """Record who makes the request, once access control knows."""
    info = CURRENT.get()
    if info is not None:
        info.actor = name


def current_request_id() -> str | None:
    info = CURRENT.get()
    return None if info is None else info.id


class _Ids:
    """Ids unique across processes and machines without a syscall per request: a random
    prefix per process (drawn again in a forked child) and a counter."""

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):08x}"


_ids = _Ids()


def new_request_id() -> str:
    return _ids.next()


def accept_request_id(incoming: str | None) -> str:
    """The client's X-Request-Id when it is short and plain, else a new id."""
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    return _ids.next()
