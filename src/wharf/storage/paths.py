"""The storage layout: the only module that knows where anything lives.

Byte-compatible with Distribution's, so either registry serves the other's data::

    <root>/docker/registry/v2/
      blobs/<alg>/<hex[0:2]>/<hex>/data
      repositories/<name>/
        _layers/<alg>/<hex>/link                         holds "<alg>:<hex>"
        _manifests/revisions/<alg>/<hex>/link
        _manifests/tags/<tag>/current/link
        _manifests/tags/<tag>/index/<alg>/<hex>/link
        _uploads/<id>/data
        _uploads/<id>/startedat                          RFC 3339 time
        _uploads/<id>/hashstates/<alg>/<offset>          Go's binary hash state
        _uploads/<id>/tuslock                            wharf only: leased by each
                                                         request to a tus upload
        _referrers/<alg>/<hex>/<alg>/<hex>/descriptor    wharf only: the referrer's
                                                         descriptor, under its subject
        _mirror/<alg>/<hex>/pulled                       wharf only: when a mirrored
                                                         manifest or blob was last pulled
        _digesttags/<alg>/<hex>/complete                 wharf only: written when wharf
                                                         stored the revision, so every
                                                         tag of it is in tags/ below
        _digesttags/<alg>/<hex>/tags/<tag>               wharf only: a tag that was
                                                         pointed at the manifest
    <root>/wharf/uploadkeys/<random name>                wharf only: keys signing upload
                                                         URLs without http.secret
    <root>/wharf/catalog/root                            wharf only: the catalog index
                                                         (JSON: each page's first name
                                                         and id, whether it is built)
    <root>/wharf/catalog/pages/<id>                      wharf only: sorted repository
                                                         names, one a line
    <root>/wharf/catalog/lock                            wharf only: leased to change
                                                         the index
    <root>/wharf/catalog/build                           wharf only: leased to build it
                                                         from a walk, and how far it got
    <root>/wharf/uploads/purge                           wharf only: leased to purge
                                                         uploads, when that last ended
    <root>/wharf/mirrors/sweep                           wharf only: when mirror expiry
                                                         last swept
    <root>/wharf/tus/<id>.info                           wharf only: a tus upload (JSON);
                                                         its bytes are the session
                                                         _uploads/<id> of its repository
    <root>/wharf/tus/clients/<client>/<id>               wharf only: the unfinished
                                                         uploads of one client

Distribution skips every ``_``-prefixed directory it does not know, so ``_referrers`` is
invisible to it. Every function takes validated value types, never raw request strings.
"""

from __future__ import annotations

from wharf.reference import Digest, RepositoryName, Tag

__all__ = [
    "ROOT",
    "blob_data",
    "blob_dir",
    "blobs_algorithm_dir",
    "blobs_dir",
    "catalog_build",
    "catalog_lock",
    "catalog_page",
    "catalog_root",
    "digest_tag",
    "digest_tags_complete",
    "digest_tags_dir",
    "digest_tags_list_dir",
    "layer_dir",
    "layer_link",
    "layers_dir",
    "link_content",
    "manifest_revision_dir",
    "manifest_revision_link",
    "manifest_revisions_dir",
    "manifests_dir",
    "mirror_record",
    "mirror_record_dir",
    "mirror_records_dir",
    "mirror_sweep_marker",
    "parse_link",
    "referrer_descriptor",
    "referrer_dir",
    "referrers_dir",
    "referrers_root",
    "repositories_dir",
    "repository_dir",
    "tag_current_link",
    "tag_dir",
    "tag_index_dir",
    "tag_index_link",
    "tags_dir",
    "tus_client_dir",
    "tus_client_upload",
    "tus_dir",
    "tus_info",
    "tus_lock",
    "upload_data",
    "upload_dir",
    "upload_hash_state",
    "upload_hash_states_dir",
    "upload_keys_dir",
    "upload_purge_marker",
    "upload_started_at",
    "uploads_dir",
]

ROOT = "/docker/registry/v2"


def _digest_dir(digest: Digest) -> str:
    return f"{digest.algorithm}/{digest.hex}"


def blobs_dir() -> str:
    return f"{ROOT}/blobs"


def blobs_algorithm_dir(algorithm: str) -> str:
    return f"{ROOT}/blobs/{algorithm}"


def blob_dir(digest: Digest) -> str:
    return f"{ROOT}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def repositories_dir() -> str:
    return f"{ROOT}/repositories"


def repository_dir(name: RepositoryName) -> str:
    return f"{ROOT}/repositories/{name.value}"


def layers_dir(name: RepositoryName) -> str:
    return f"{repository_dir(name)}/_layers"


def layer_dir(name: RepositoryName, digest: Digest) -> str:
    return f"{layers_dir(name)}/{_digest_dir(digest)}"


def layer_link(name: RepositoryName, digest: Digest) -> str:
    return f"{layer_dir(name, digest)}/link"


def manifests_dir(name: RepositoryName) -> str:
    return f"{repository_dir(name)}/_manifests"


def manifest_revisions_dir(name: RepositoryName) -> str:
    return f"{manifests_dir(name)}/revisions"


def manifest_revision_dir(name: RepositoryName, digest: Digest) -> str:
    return f"{manifest_revisions_dir(name)}/{_digest_dir(digest)}"


def manifest_revision_link(name: RepositoryName, digest: Digest) -> str:
    return f"{manifest_revision_dir(name, digest)}/link"


def tags_dir(name: RepositoryName) -> str:
    return f"{manifests_dir(name)}/tags"


def tag_dir(name: RepositoryName, tag: Tag) -> str:
    return f"{tags_dir(name)}/{tag.value}"


def tag_current_link(name: RepositoryName, tag: Tag) -> str:
    return f"{tag_dir(name, tag)}/current/link"


def tag_index_dir(name: RepositoryName, tag: Tag) -> str:
    return f"{tag_dir(name, tag)}/index"


def tag_index_link(name: RepositoryName, tag: Tag, digest: Digest) -> str:
    return f"{tag_dir(name, tag)}/index/{_digest_dir(digest)}/link"


def uploads_dir(name: RepositoryName) -> str:
    return f"{repository_dir(name)}/_uploads"


def upload_dir(name: RepositoryName, upload_id: str) -> str:
    return f"{uploads_dir(name)}/{upload_id}"


def upload_data(name: RepositoryName, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/data"


def upload_started_at(name: RepositoryName, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/startedat"


def upload_hash_states_dir(name: RepositoryName, upload_id: str, algorithm: str) -> str:
    return f"{upload_dir(name, upload_id)}/hashstates/{algorithm}"


def upload_hash_state(name: RepositoryName, upload_id: str, algorithm: str, offset: int) -> str:
    return f"{upload_hash_states_dir(name, upload_id, algorithm)}/{offset}"


def referrers_root(name: RepositoryName) -> str:
    """Every subject's referrers in the repository."""
    return f"{repository_dir(name)}/_referrers"


def referrers_dir(name: RepositoryName, subject: Digest) -> str:
    return f"{repository_dir(name)}/_referrers/{_digest_dir(subject)}"


def referrer_dir(name: RepositoryName, subject: Digest, referrer: Digest) -> str:
    return f"{referrers_dir(name, subject)}/{_digest_dir(referrer)}"


def referrer_descriptor(name: RepositoryName, subject: Digest, referrer: Digest) -> str:
    return f"{referrer_dir(name, subject, referrer)}/descriptor"


def link_content(digest: Digest) -> bytes:
    """What a link file holds."""
    return str(digest).encode()


def parse_link(content: bytes) -> Digest:
    """The digest a link file points to; DigestInvalid when it is not one."""
    return Digest.parse(content.decode("utf-8", "replace").strip())


def upload_keys_dir() -> str:
    """Outside Distribution's tree, which it therefore never sees."""
    return "/wharf/uploadkeys"


def mirror_records_dir(name: RepositoryName) -> str:
    return f"{repository_dir(name)}/_mirror"


def mirror_record_dir(name: RepositoryName, digest: Digest) -> str:
    return f"{mirror_records_dir(name)}/{_digest_dir(digest)}"


def mirror_record(name: RepositoryName, digest: Digest) -> str:
    return f"{mirror_record_dir(name, digest)}/pulled"


def mirror_sweep_marker() -> str:
    return "/wharf/mirrors/sweep"


def tus_dir() -> str:
    return "/wharf/tus"


def tus_info(upload_id: str) -> str:
    """``upload_id``: a session id (a UUID), checked by the caller."""
    return f"{tus_dir()}/{upload_id}.info"


def tus_client_dir(client: str) -> str:
    """``client``: a hex digest naming the client, made by the caller."""
    return f"{tus_dir()}/clients/{client}"


def tus_client_upload(client: str, upload_id: str) -> str:
    return f"{tus_client_dir(client)}/{upload_id}"


def tus_lock(name: RepositoryName, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/tuslock"


def catalog_root() -> str:
    return "/wharf/catalog/root"


def catalog_page(page_id: str) -> str:
    """``page_id``: a name the index made ([0-9a-f]+)."""
    return f"/wharf/catalog/pages/{page_id}"


def catalog_lock() -> str:
    return "/wharf/catalog/lock"


def catalog_build() -> str:
    return "/wharf/catalog/build"


def digest_tags_dir(name: RepositoryName, digest: Digest) -> str:
    return f"{repository_dir(name)}/_digesttags/{_digest_dir(digest)}"


def digest_tags_complete(name: RepositoryName, digest: Digest) -> str:
    return f"{digest_tags_dir(name, digest)}/complete"


def digest_tags_list_dir(name: RepositoryName, digest: Digest) -> str:
    return f"{digest_tags_dir(name, digest)}/tags"


def digest_tag(name: RepositoryName, digest: Digest, tag: Tag) -> str:
    return f"{digest_tags_list_dir(name, digest)}/{tag.value}"


def upload_purge_marker() -> str:
    return "/wharf/uploads/purge"
