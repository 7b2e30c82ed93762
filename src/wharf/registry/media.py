"""Media types of manifests and of what they reference, and which of them a push may use.

Accepted on ``PUT /v2/<name>/manifests/<reference>``: the OCI image manifest and index
(image-spec v1.1) and Docker's schema 2 manifest and manifest list, the four types
Distribution v3 registers. Refused:

- Docker schema 1 (signed and unsigned): Distribution v3 removed it, and it names layers by
  ``blobSum`` without sizes, so nothing in it can be checked the way schema 2 can.
- The OCI artifact manifest (``application/vnd.oci.artifact.manifest.v1+json``) and its ORAS
  forerunner: the artifact manifest existed only in image-spec 1.1 release candidates and was
  dropped before 1.1.0, which carries artifacts in an image manifest with ``artifactType``
  instead. Distribution never registered it; zot accepted it while the release candidates
  were current and removed it since. Clients fall back to an image manifest when refused.
"""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_FOREIGN_LAYER_GZIP",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_TYPES",
    "DOCKER_PLUGIN_CONFIG",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "EXTERNAL_LAYER_TYPES",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_ARTIFACT_MANIFEST",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE",
    "OCI_LAYER_NONDISTRIBUTABLE_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "ORAS_ARTIFACT_MANIFEST",
    "REFUSED_ARTIFACT_MANIFEST_TYPES",
    "SCHEMA1_TYPES",
    "base_media_type",
]

# OCI image-spec v1.1.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: The ``{}`` blob: the config (and sometimes the only layer) of an artifact.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Deprecated by image-spec 1.1 but still pushed, mostly by Windows base images.
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
#: Refused on push (see the module docstring).
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
ORAS_ARTIFACT_MANIFEST = "application/vnd.cncf.oras.artifact.manifest.v1+json"

# Docker image manifest v2, schema 2.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

# Docker image manifest v2, schema 1: refused on push.
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: The manifest media types a push may use.
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
DOCKER_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, DOCKER_MANIFEST_LIST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
REFUSED_ARTIFACT_MANIFEST_TYPES = frozenset({OCI_ARTIFACT_MANIFEST, ORAS_ARTIFACT_MANIFEST})

#: Layers that clients may fetch from their ``urls`` instead of from the registry. A layer of
#: one of these types that lists URLs need not exist in the registry; without URLs it is an
#: ordinary blob (Distribution's rule).
EXTERNAL_LAYER_TYPES = frozenset(
    {
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        DOCKER_FOREIGN_LAYER,
        DOCKER_FOREIGN_LAYER_GZIP,
    }
)


def base_media_type(value: str | None) -> str | None:
    """The ``type/subtype`` of a Content-Type or Accept entry, lower-cased; None when empty.

    Parameters are dropped: the distribution-spec says a registry SHOULD ignore them on a
    manifest push, and type and subtype are case-insensitive (RFC 9110).
    """
    if value is None:
        return None
    base = value.partition(";")[0].strip().lower()
    return base or None
