"""wharf as a library: a registry's repositories, blobs, manifests and tags, over any storage
wharf can serve (filesystem, in memory, S3, Azure), in wharf's and Distribution's layout.

::

    from wharf.library import open_registry

    async with open_registry({"storage": {"inmemory": {}}}) as registry:
        repository = registry.repository("team/app")
        config = await repository.blobs.put(b"{}")
        print(await registry.repositories(), await repository.tags.all())

Distribution's interfaces, one for one: :class:`Namespace` (``Repository``,
``Repositories``), :class:`Repository` (``Blobs``, ``Manifests``, ``Tags``), :class:`Blobs`
(statter, provider, ingester with resumable :class:`BlobWriter` by id, enumerator),
:class:`Manifests` (exists, get, put, delete, enumerator), :class:`Tags` (get, tag, untag,
all, lookup), :class:`RepositoryRemover`, and :func:`register_manifest_schema`
(``RegisterManifestSchema``). The HTTP server runs on the same services. Errors are the
registry's own (:class:`RegistryError` and its OCI error codes).

Everything not listed in ``__all__`` here is private to wharf and may change.
"""

from wharf.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    RegistryError,
    TagInvalid,
    Unsupported,
)
from wharf.library._blobs import Blobs, BlobWriter
from wharf.library._content import Manifests, Tags
from wharf.library._namespace import Namespace, Repository, RepositoryRemover, open_registry
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.blobs import BlobInfo
from wharf.registry.manifest_parse import Descriptor
from wharf.registry.manifests import StoredManifest
from wharf.registry.schemas import (
    ManifestReferences,
    SchemaParser,
    register_manifest_schema,
    unregister_manifest_schema,
)

__all__ = [
    "BlobInfo",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "BlobWriter",
    "Blobs",
    "Descriptor",
    "Digest",
    "DigestInvalid",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestReferences",
    "ManifestUnknown",
    "Manifests",
    "NameInvalid",
    "NameUnknown",
    "Namespace",
    "RegistryError",
    "Repository",
    "RepositoryName",
    "RepositoryRemover",
    "SchemaParser",
    "StoredManifest",
    "Tag",
    "TagInvalid",
    "Tags",
    "Unsupported",
    "open_registry",
    "register_manifest_schema",
    "unregister_manifest_schema",
]
