"""Manifest media types registered by programs using wharf as a library.

Distribution's ``RegisterManifestSchema``: a program adds a media type with a parser, and from
then on a push of that type is accepted, validated by the parser, and checked as a built-in
manifest is (every blob and child manifest it names must be in the repository, its subject is
indexed for referrers). The registry is process-wide, as Distribution's is, so an HTTP server
running in the same process accepts the type too. The built-in types cannot be replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wharf.registry import media

if TYPE_CHECKING:
    from wharf.registry.manifest_parse import Descriptor

__all__ = [
    "ManifestReferences",
    "SchemaParser",
    "register_manifest_schema",
    "registered_parser",
    "unregister_manifest_schema",
]


@dataclass(frozen=True, slots=True)
class ManifestReferences:
    """What a registered parser found in a manifest: what must exist before it is accepted,
    and what a referrers response shows of it."""

    #: Blobs that must be linked in the repository.
    blobs: Sequence[Descriptor] = ()
    #: Manifests that must be in the repository.
    manifests: Sequence[Descriptor] = ()
    #: The manifest this one refers to (indexed for the referrers API).
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] | None = field(default=None, hash=False)


#: Takes the manifest's JSON object; raises ValueError (its message is the reason given to
#: the client in a MANIFEST_INVALID error) when the manifest is not valid.
SchemaParser = Callable[[Mapping[str, Any]], ManifestReferences]

_lock = threading.Lock()
_parsers: dict[str, SchemaParser] = {}


def register_manifest_schema(media_type: str, parser: SchemaParser) -> None:
    """Accept pushes of ``media_type``, validated by ``parser``. ValueError for a built-in
    type, a type registered already, or a string that is not a media type."""
    base = media.base_media_type(media_type)
    if base is None or base != media_type.strip().lower() or "/" not in base:
        raise ValueError(f"not a media type (type/subtype, no parameters): {media_type!r}")
    if base in media.MANIFEST_TYPES or base in media.SCHEMA1_TYPES:
        raise ValueError(f"{base} is built in and cannot be registered")
    with _lock:
        if base in _parsers:
            raise ValueError(f"a parser for {base} is registered already")
        _parsers[base] = parser


def unregister_manifest_schema(media_type: str) -> None:
    """Refuse pushes of ``media_type`` again (what is stored stays)."""
    with _lock:
        _parsers.pop(media.base_media_type(media_type) or "", None)


def registered_parser(media_type: str | None) -> SchemaParser | None:
    if media_type is None:
        return None
    return _parsers.get(media_type)
