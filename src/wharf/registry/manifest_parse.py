"""Parse and validate a pushed manifest: every check that needs nothing but its bytes.

The result tells the manifest service what to check and record: the effective media type,
the digest of the exact bytes, the blobs and child manifests that must exist in the
repository, the subject to index for referrers, and the artifact type and annotations a
referrers response shows. Existence checks, URL allow and deny lists and storage belong to
the service; this module never touches storage.

Rules, and the facts they rest on:

- The body must be a UTF-8 JSON object (RFC 8259). ``NaN``/``Infinity``, lone surrogate
  escapes (they cannot be written back as UTF-8) and nesting deeper than :data:`MAX_DEPTH`
  are refused, so that nothing downstream can fail on a value this module let through.
- Duplicate object keys are refused. Go's ``encoding/json`` (Distribution, zot, containerd)
  keeps the last value and other parsers keep the first, so a manifest with two ``layers``
  could mean one thing to the registry's reference checks and another to a client: the same
  class of ambiguity as CVE-2021-41190. No real client writes duplicate keys.
- Media type: the body's ``mediaType`` when set, else the Content-Type (parameters ignored,
  as the distribution-spec says a registry SHOULD). When both are set they must agree (a
  client MUST send the ``mediaType`` as Content-Type). With neither, a document with
  ``manifests`` is an OCI index and one with ``config`` or ``layers`` an OCI manifest, the
  types image-spec lets omit ``mediaType``. Docker schema 2 types must carry ``mediaType``
  (Distribution's ``schema2`` and ``manifestlist`` packages require it).
- An image manifest carrying ``manifests``, or an index carrying ``config`` or ``layers``, is
  refused (Distribution's ``validateManifest``/``validateIndex``, the CVE-2021-41190 fix).
- ``schemaVersion`` must be the integer 2; schema 1 is refused with its own message.
- Descriptors: ``mediaType`` matching image-spec's RFC 6838 pattern, ``digest`` of a supported
  algorithm, ``size`` an integer in [0, 2**63-1] (``true`` is not an integer). A malformed
  digest string raises DigestInvalid, as Distribution answers and the distribution-spec
  allows ("MAY also be returned when a manifest includes an invalid layer digest"); every
  other fault raises ManifestInvalid naming the field.
- Layer media types are not restricted, not even in Docker schema 2 manifests: Distribution's
  schema 2 handler checks none, and real Docker-format images carry OCI zstd layers.
- A layer of an :data:`~wharf.registry.media.EXTERNAL_LAYER_TYPES` type that lists ``urls``
  is not required to exist in the registry (Distribution's rule) and goes to
  ``ParsedManifest.external`` instead of ``blobs``. A Docker foreign layer without URLs is
  refused in a Docker manifest (Distribution: "missing URL on layer"). Layer URLs must be
  absolute http(s) URLs without a fragment (Distribution's check).
- Index children may have any media type: image-spec says an unknown one MUST be ignored,
  and Distribution checks none. ``platform``, when present, needs string ``architecture``
  and ``os`` (image-spec); it is optional in both index formats (Distribution does not
  require it in a Docker manifest list either).
- ``subject``, ``artifactType`` and ``annotations`` are read from OCI manifests and indexes
  only; Docker formats have no such fields and, like Distribution, wharf ignores them there.
- An empty ``artifactType`` counts as absent (the distribution-spec speaks of an artifact
  type "empty or missing"); it is not required when the config is the empty descriptor,
  which neither Distribution nor zot enforces either.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn, TypeGuard
from urllib.parse import urlsplit

from wharf.errors import DigestInvalid, ManifestInvalid, SizeInvalid
from wharf.reference import SUPPORTED_ALGORITHMS, Digest
from wharf.registry import media, schemas

__all__ = [
    "MAX_DEPTH",
    "MAX_MANIFEST_SIZE",
    "Descriptor",
    "ParsedManifest",
    "digest_of",
    "parse_manifest",
]

#: The size the distribution-spec says registries should at least accept; the default limit.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects accepted; real manifests need five.
MAX_DEPTH = 64
_MAX_SIZE_VALUE = 2**63 - 1
# image-spec's schema/defs-descriptor.json pattern for RFC 6838 media types.
_MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")
# urlsplit silently drops tabs and newlines; Go's url.Parse refuses control characters.
_URL_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f]")
_DETAIL_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor as a manifest gives it.

    ``annotations`` and ``platform`` are read-only views of the values as given (an empty
    ``{}`` stays empty, it does not become None); they take no part in hashing.
    """

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    platform: Mapping[str, Any] | None = field(default=None, hash=False)
    urls: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, value: object, *, path: str = "descriptor") -> Descriptor:
        """Validate a descriptor object; ``path`` names it in error details."""
        if value is None:
            _fail("is required", path)
        if not isinstance(value, dict):
            _fail("must be a descriptor object", path)
        media_type = value.get("mediaType")
        if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.fullmatch(media_type):
            _fail("mediaType must be a media type such as type/subtype", f"{path}.mediaType")
        size = value.get("size")
        if type(size) is not int or not 0 <= size <= _MAX_SIZE_VALUE:
            _fail("size must be a non-negative integer", f"{path}.size")
        return cls(
            media_type=media_type,
            digest=_digest(value.get("digest"), f"{path}.digest"),
            size=size,
            artifact_type=_optional_media_type(value, "artifactType", path),
            annotations=_annotations(value.get("annotations"), f"{path}.annotations"),
            platform=_platform(value.get("platform"), f"{path}.platform"),
            urls=_urls(value.get("urls"), f"{path}.urls"),
        )

    def to_json(self) -> dict[str, Any]:
        """The OCI descriptor JSON, optional properties only when set."""
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type is not None:
            data["artifactType"] = self.artifact_type
        if self.urls is not None:
            data["urls"] = list(self.urls)
        if self.annotations is not None:
            data["annotations"] = dict(self.annotations)
        if self.platform is not None:
            # Deep, because os.features and features are lists the caller might change.
            data["platform"] = copy.deepcopy(dict(self.platform))
        return data


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """A validated manifest, ready for the manifest service's existence checks."""

    #: The effective media type (see the module docstring).
    media_type: str
    #: The digest of the exact bytes pushed.
    digest: Digest
    size: int
    #: Config and layers that must exist in the repository; none for an index.
    blobs: tuple[Descriptor, ...]
    #: Children of an index or manifest list; they must exist as manifests.
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    #: ``artifactType``, or for an image manifest without one its config's media type.
    artifact_type: str | None
    annotations: Mapping[str, str] | None = field(hash=False)
    config: Descriptor | None = None
    #: Layers fetched from their ``urls``, not required to exist in the registry.
    external: tuple[Descriptor, ...] = ()

    def references(self) -> tuple[Descriptor, ...]:
        """What must exist before this manifest is accepted: blobs, then child manifests."""
        return self.blobs + self.manifests

    def descriptor(self) -> Descriptor:
        """This manifest's descriptor as a referrers response lists it."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size,
            artifact_type=self.artifact_type,
            annotations=self.annotations,
        )


def digest_of(body: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of ``body`` with a supported algorithm."""
    _check_algorithm(algorithm)
    return Digest(algorithm, hashlib.new(algorithm, body).hexdigest())


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise DigestInvalid(
            {"algorithm": algorithm[:32]},
            message=f"unsupported digest algorithm {algorithm[:32]!r}",
        )


def parse_manifest(
    body: bytes,
    content_type: str | None,
    digest_algorithm: str = "sha256",
    *,
    max_size: int | None = MAX_MANIFEST_SIZE,
) -> ParsedManifest:
    """Validate a pushed manifest and describe what it references.

    Raises ManifestInvalid for any fault in the document, DigestInvalid for a malformed
    descriptor digest or an unsupported ``digest_algorithm``, and SizeInvalid (413) for a
    body over ``max_size`` (None: no limit here, the caller enforces one).
    """
    # Before any work: an unusable algorithm is the reference's fault, not the body's.
    _check_algorithm(digest_algorithm)
    if max_size is not None and len(body) > max_size:
        raise SizeInvalid(
            {"size": len(body), "limit": max_size},
            message="manifest too large",
            status=413,
        )
    document = _load(body)
    media_type = _effective_media_type(document, content_type)
    parser = schemas.registered_parser(media_type)
    if parser is not None:
        return _parse_registered(parser, document, media_type, body, digest_algorithm)
    version = document.get("schemaVersion")
    if type(version) is not int or version != 2:
        _fail("schemaVersion must be 2", "schemaVersion")
    if media_type in media.INDEX_TYPES:
        return _parse_index(document, media_type, body, digest_algorithm)
    return _parse_image(document, media_type, body, digest_algorithm)


# --- the document -------------------------------------------------------------------------


def _fail(reason: str, path: str | None = None, *, message: str | None = None) -> NoReturn:
    detail = {"reason": reason}
    if path is not None:
        detail["field"] = path
    raise ManifestInvalid(detail, message=message)


def _quote(text: str) -> str:
    # repr escapes what cannot be printed, lone surrogates included, so details stay encodable.
    return repr(text[:_DETAIL_LIMIT])


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _fail(f"duplicate key {_quote(key)}")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> NoReturn:
    _fail(f"{name} is not valid JSON")


def _load(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestInvalid({"reason": f"not valid UTF-8 at byte {exc.start}"}) from None
    try:
        document = json.loads(
            text, object_pairs_hook=_unique_object, parse_constant=_reject_constant
        )
    except RecursionError:
        _fail(f"nested deeper than {MAX_DEPTH} levels")
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        _fail(f"not valid JSON: {str(exc)[:_DETAIL_LIMIT]}")
    if not isinstance(document, dict):
        _fail("must be a JSON object")
    # UTF-8 decoding already refused encoded surrogates; only \u escapes can make them.
    _check_values(document, _SURROGATE_ESCAPE_RE.search(text) is not None)
    return document


def _check_values(document: dict[str, Any], surrogates: bool) -> None:
    # Iterative, so that the depth check cannot itself exhaust the stack.
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            _fail(f"nested deeper than {MAX_DEPTH} levels")
        values = node.values() if isinstance(node, dict) else node
        if surrogates and isinstance(node, dict) and any(map(_SURROGATE_RE.search, node)):
            _fail("a key holds a lone surrogate (\\ud800-\\udfff)")
        for value in values:
            if isinstance(value, dict | list):
                stack.append((value, depth + 1))
            elif surrogates and isinstance(value, str) and _SURROGATE_RE.search(value):
                _fail("a string holds a lone surrogate (\\ud800-\\udfff)")


def _optional_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    """A string property; null and "" count as absent, as Go's omitempty has them."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        _fail(f"{key} must be a string", path)
    return value


def _optional_media_type(obj: dict[str, Any], key: str, parent: str | None) -> str | None:
    path = f"{parent}.{key}" if parent else key
    value = _optional_str(obj, key, path)
    if value is not None and not _MEDIA_TYPE_RE.fullmatch(value):
        _fail(f"{key} must be a media type such as type/subtype", path)
    return value


def _effective_media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = _optional_str(document, "mediaType", "mediaType")
    header = media.base_media_type(content_type)
    version = document.get("schemaVersion")
    if (
        (type(version) is int and version == 1)
        or declared in media.SCHEMA1_TYPES
        or header in media.SCHEMA1_TYPES
    ):
        _fail(
            "Docker schema 1 manifests are not supported; push schema 2 or OCI",
            "schemaVersion",
            message="manifest schema 1 is not supported",
        )
    if declared is not None and header is not None and declared != header:
        _fail(
            f"mediaType {_quote(declared)} does not match Content-Type {_quote(header)}",
            "mediaType",
        )
    effective = declared or header or _sniff(document)
    if effective in media.REFUSED_ARTIFACT_MANIFEST_TYPES:
        _fail(
            f"{effective} was dropped before image-spec 1.1.0; push an image manifest with "
            "artifactType instead",
            "mediaType",
            message="unsupported manifest media type",
        )
    if effective not in media.MANIFEST_TYPES and schemas.registered_parser(effective) is None:
        _fail(
            f"unsupported manifest media type {_quote(effective)}",
            "mediaType",
            message="unsupported manifest media type",
        )
    if declared is None and effective in media.DOCKER_MANIFEST_TYPES:
        _fail(f"mediaType is required in a {effective} manifest", "mediaType")
    return effective


def _sniff(document: dict[str, Any]) -> str:
    if document.get("manifests") is not None:
        return media.OCI_INDEX
    if document.get("config") is not None or document.get("layers") is not None:
        return media.OCI_MANIFEST
    _fail("no mediaType, no Content-Type, and neither manifests nor config and layers")


# --- types registered by programs (wharf.registry.schemas) ----------------------------------


def _parse_registered(
    parser: schemas.SchemaParser,
    document: dict[str, Any],
    media_type: str,
    body: bytes,
    algorithm: str,
) -> ParsedManifest:
    # Stored manifests are served with the type their body declares (detect_media_type).
    if document.get("mediaType") != media_type:
        _fail(f"mediaType is required in a {media_type} manifest", "mediaType")
    try:
        found = parser(MappingProxyType(document))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # A parser's fault is the document's: the client learns why, the server stays up.
        _fail(str(exc)[:_DETAIL_LIMIT] or f"not a valid {media_type} manifest")
    if not isinstance(found, schemas.ManifestReferences):
        raise TypeError(f"the parser of {media_type} returned {type(found).__name__}")
    return ParsedManifest(
        media_type=media_type,
        digest=digest_of(body, algorithm),
        size=len(body),
        blobs=tuple(found.blobs),
        manifests=tuple(found.manifests),
        subject=found.subject,
        artifact_type=found.artifact_type,
        annotations=found.annotations,
    )


# --- image manifests and indexes ------------------------------------------------------------


def _parse_image(
    document: dict[str, Any], media_type: str, body: bytes, algorithm: str
) -> ParsedManifest:
    if document.get("manifests") is not None:
        _fail("an image manifest cannot have manifests (this looks like an index)", "manifests")
    config = Descriptor.from_json(document.get("config"), path="config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        _fail("layers must be an array", "layers")
    blobs = [config]
    external: list[Descriptor] = []
    for index, item in enumerate(layers):
        path = f"layers[{index}]"
        layer = Descriptor.from_json(item, path=path)
        if layer.urls:
            _check_layer_urls(layer.urls, f"{path}.urls")
        if layer.media_type in media.EXTERNAL_LAYER_TYPES:
            if layer.urls:
                external.append(layer)
                continue
            if media_type == media.DOCKER_MANIFEST and layer.media_type in (
                media.DOCKER_FOREIGN_LAYER,
                media.DOCKER_FOREIGN_LAYER_GZIP,
            ):
                _fail("a foreign layer must list urls", f"{path}.urls")
        blobs.append(layer)
    subject, artifact_type, annotations = _oci_fields(document, media_type)
    return ParsedManifest(
        media_type=media_type,
        digest=digest_of(body, algorithm),
        size=len(body),
        blobs=tuple(blobs),
        manifests=(),
        subject=subject,
        artifact_type=artifact_type or config.media_type,
        annotations=annotations,
        config=config,
        external=tuple(external),
    )


def _parse_index(
    document: dict[str, Any], media_type: str, body: bytes, algorithm: str
) -> ParsedManifest:
    for key in ("config", "layers"):
        if document.get(key) is not None:
            _fail(f"an index cannot have {key} (this looks like an image manifest)", key)
    items = document.get("manifests")
    if not isinstance(items, list):
        _fail("manifests must be an array", "manifests")
    children = tuple(
        Descriptor.from_json(item, path=f"manifests[{index}]") for index, item in enumerate(items)
    )
    subject, artifact_type, annotations = _oci_fields(document, media_type)
    return ParsedManifest(
        media_type=media_type,
        digest=digest_of(body, algorithm),
        size=len(body),
        blobs=(),
        manifests=children,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )


def _oci_fields(
    document: dict[str, Any], media_type: str
) -> tuple[Descriptor | None, str | None, Mapping[str, str] | None]:
    if media_type in media.DOCKER_MANIFEST_TYPES:
        return None, None, None
    raw_subject = document.get("subject")
    subject = None if raw_subject is None else Descriptor.from_json(raw_subject, path="subject")
    artifact_type = _optional_media_type(document, "artifactType", None)
    return subject, artifact_type, _annotations(document.get("annotations"), "annotations")


# --- descriptor properties ------------------------------------------------------------------


def _digest(value: object, path: str) -> Digest:
    if not isinstance(value, str):
        _fail("digest must be a string such as sha256:<hex>", path)
    try:
        return Digest.parse(value)
    except DigestInvalid as exc:
        raise DigestInvalid(
            {"digest": value[:_DETAIL_LIMIT], "field": path}, message=exc.text
        ) from None


def _annotations(value: object, path: str) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        _fail("annotations must be an object of strings", path)
    return MappingProxyType(value)


def _string_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _platform(value: object, path: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("platform must be an object", path)
    for key in ("architecture", "os"):
        if not isinstance(value.get(key), str):
            _fail(f"{key} is required and must be a string", f"{path}.{key}")
    for key in ("os.version", "variant"):
        if value.get(key) is not None and not isinstance(value[key], str):
            _fail(f"{key} must be a string", f"{path}.{key}")
    for key in ("os.features", "features"):
        if value.get(key) is not None and not _string_list(value[key]):
            _fail(f"{key} must be an array of strings", f"{path}.{key}")
    return MappingProxyType(value)


def _urls(value: object, path: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not _string_list(value):
        _fail("urls must be an array of strings", path)
    return tuple(value)


def _check_layer_urls(urls: tuple[str, ...], path: str) -> None:
    for index, url in enumerate(urls):
        try:
            parts = urlsplit(url)
        except ValueError:  # such as an unclosed IPv6 bracket
            parts = None
        if (
            parts is None
            or _URL_FORBIDDEN_RE.search(url)
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.fragment
        ):
            _fail(
                "layer urls must be absolute http or https URLs without a fragment",
                f"{path}[{index}]",
            )
