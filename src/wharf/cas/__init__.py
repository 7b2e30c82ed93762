"""A content-addressed repository, as reflow's S3 repository, on any storage wharf has.

::

    from wharf.cas import dial

    repository = dial("s3://bucket/prefix?region=eu-west-1")   # or file:///srv/objects, mem://
    digest = await repository.put(b"hello")                    # sha256:2cf24dba...
    assert await repository.read(digest) == b"hello"
    await repository.get_file(digest, "/tmp/hello")            # ranged reads, several at once
    await repository.collect(live={digest})                    # removes everything else

Objects live at ``objects/<alg>/<hex>`` under the prefix (reflow's layout, but for the colon,
which a storage path cannot hold), or in a registry's blob store (``layout="registry"``),
where a wharf or Distribution registry sharing the bucket sees them as blobs.
"""

from wharf.cas._dial import dial
from wharf.cas._errors import CASError, DigestMismatch, ObjectNotFound
from wharf.cas._layout import StoredObject
from wharf.cas._repository import CollectResult, Repository
from wharf.reference import Digest

__all__ = [
    "CASError",
    "CollectResult",
    "Digest",
    "DigestMismatch",
    "ObjectNotFound",
    "Repository",
    "StoredObject",
    "dial",
]
