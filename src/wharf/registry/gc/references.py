"""What a stored manifest references, read leniently.

The collector reads what wharf stored and also what Distribution stored before it: Docker
schema 1 (``fsLayers[].blobSum``), schema 2, manifest lists, OCI manifests and indexes, and
artifact manifests of image-spec release candidates (``blobs``). Validation is not its job:
:mod:`~wharf.registry.manifest_parse` refuses half of these. What matters is never to miss a
reference, so every ``digest`` (and ``blobSum``) anywhere in the document counts, also in
objects a duplicate key would hide. A document that is not a JSON object with a
``schemaVersion``, or holding a value there that is not a digest, is not understood: the
caller keeps it and everything its repository links (see :mod:`~wharf.registry.gc.mark`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wharf.errors import RegistryError
from wharf.reference import Digest

__all__ = ["ManifestRefs", "read_refs"]

_REFERENCE_KEYS = ("digest", "blobSum")


@dataclass(frozen=True, slots=True)
class ManifestRefs:
    #: Entries of ``manifests``: the children of an index or manifest list.
    children: frozenset[Digest]
    #: Every other digest the document names (config, layers, ...), subject excluded.
    blobs: frozenset[Digest]
    subject: Digest | None

    @property
    def everything(self) -> frozenset[Digest]:
        return self.children | self.blobs


class _Unreadable(Exception):
    pass


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key-value pairs, duplicates included."""

    def get(self, key: str) -> Iterator[Any]:
        return (value for name, value in self if name == key)


def read_refs(body: bytes) -> ManifestRefs | None:
    """The references of a stored manifest, or None when it is not understood."""
    try:
        document = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, _Pairs):
        return None
    if not any(type(v) is int and v in (1, 2) for v in document.get("schemaVersion")):
        return None
    try:
        subjects = [_digest(v, "digest") for s in document.get("subject") for v in _objects(s)]
        children = [
            _digest(v, "digest")
            for items in document.get("manifests")
            if isinstance(items, list)
            for item in items
            for v in _objects(item)
        ]
        blobs: set[Digest] = set()
        for name, value in document:
            if name not in ("subject", "manifests", "annotations"):
                blobs.update(_all_digests(value))
    except _Unreadable:
        return None
    found = {d for d in subjects if d is not None}
    if len(found) > 1:  # two subjects: which one Distribution indexed is unknowable
        return None
    return ManifestRefs(
        children=frozenset(c for c in children if c is not None),
        blobs=frozenset(blobs),
        subject=next(iter(found), None),
    )


def _objects(value: Any) -> Iterator[Any]:
    """The ``digest`` values of an object (all of them, when the key is repeated)."""
    if isinstance(value, _Pairs):
        yield from value.get("digest")


def _digest(value: Any, key: str) -> Digest | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Unreadable(key)
    try:
        return Digest.parse(value)
    except RegistryError:
        raise _Unreadable(value) from None


def _all_digests(value: Any) -> Iterator[Digest]:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, _Pairs):
            for name, item in node:
                if name == "annotations":
                    continue  # strings chosen by users, never references
                if name in _REFERENCE_KEYS and not isinstance(item, _Pairs | list):
                    digest = _digest(item, name)
                    if digest is not None:
                        yield digest
                else:
                    stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
